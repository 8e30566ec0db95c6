"""What a project's sources, definition and events use: functions, endpoints, services, objects."""

from __future__ import annotations

import ast
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from scones import config, imported
from scones.aws import (
    AccountClients,
)
from scones.byo.definition import STATES_INTEGRATION, iter_states
from scones.byo.errors import ByoUsageError, ServiceUnavailable, UnmappedFunction

# Modules every AWS Python runtime has besides the standard library.
RUNTIME_MODULES = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six",
                   "awslambdaric", "simplejson"}  # fmt: skip
SAGEMAKER_INVOKES = {"invoke_endpoint", "invoke_endpoint_async",
                     "invoke_endpoint_with_response_stream"}  # fmt: skip

# arn:partition:lambda:region:account:function:name[:qualifier] (the Lambda API's own pattern)
# ------------------------------ Sources: functions, handlers, endpoints -----------------------


@dataclass
class FunctionSource:
    """One function to deploy: the file holding it, the module name in the zip, the handler."""

    name: str
    path: Path
    module: str
    handler_name: str
    runtime: str

    @property
    def handler(self) -> str:
        return f"{self.module}.{self.handler_name}"


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def python_files(sources: list[Path]) -> list[Path]:
    """The .py files given directly or found (recursively) in the folders given."""
    files: list[Path] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            files += sorted(p for p in source.rglob("*.py") if "__pycache__" not in p.parts)
        elif source.is_file():
            files.append(source)
        else:
            raise ByoUsageError(
                f"{source}: no such file or folder (give Lambda .py files or folders)"
            )
    return list(dict.fromkeys(files))


def handler_functions(path: Path) -> list[str]:
    """Top-level functions of a file that take (event, context)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return re.findall(
            r"^def\s+(\w+)\s*\(\s*\w+\s*,\s*\w+\s*\)", path.read_text(errors="replace"), flags=re.M
        )
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and len(node.args.args) == 2
    ]


def map_functions(
    names: list[str],
    files: list[Path],
    explicit: dict[str, str],
    runtimes: dict[str, str],
    default_runtime: str,
) -> dict[str, FunctionSource]:
    """Which file and handler each function runs.

    ``explicit`` maps a function to ``FILE[:HANDLER]`` (HANDLER is ``func`` or AWS's
    ``module.func``). Otherwise, in order: a file named like the function (``serializeImageData``
    ~ ``serialize_image_data.py``) with ``lambda_handler``/``handler``/its only (event, context)
    function; a folder named like the function holding ``lambda_function.py`` (a console export);
    a top-level function named like it in any file (one file, several handlers).
    """
    mapped: dict[str, FunctionSource] = {}
    for name, spec in explicit.items():
        file_part, _, handler = spec.partition(":")
        path = Path(file_part)
        if not path.is_file():
            raise ByoUsageError(f"--function {name}={spec}: no file {path}")
        mapped[name] = _source(name, path, handler or None, runtimes.get(name, default_runtime))
    missing = []
    for name in names:
        if name in mapped:
            continue
        found = _find_source(name, files)
        if found is None:
            missing.append(name)
            continue
        path, handler = found
        mapped[name] = _source(name, path, handler, runtimes.get(name, default_runtime))
    if missing:
        listed = ", ".join(str(f) for f in files) or "none"
        raise UnmappedFunction(
            f"no source for function(s) {', '.join(missing)} (files given: {listed}); name a file "
            "after the function or pass --function NAME=FILE[:HANDLER]"
        )
    return mapped


def _find_source(name: str, files: list[Path]) -> tuple[Path, str | None] | None:
    key = _norm(name)
    for path in files:
        if _norm(path.stem) == key:
            return path, None
    for path in files:
        if path.name == "lambda_function.py" and _norm(path.parent.name) == key:
            return path, "lambda_handler"
    for path in files:
        for func in handler_functions(path):
            if _norm(func) == key:
                return path, func
    return None


def _source(name: str, path: Path, handler: str | None, runtime: str) -> FunctionSource:
    module = path.stem
    if handler and "." in handler:
        module, _, handler = handler.rpartition(".")  # AWS's module.function form
    functions = handler_functions(path)
    if not handler:
        for preferred in ("lambda_handler", "handler"):
            if preferred in functions:
                handler = preferred
                break
        else:
            if len(functions) != 1:
                raise ByoUsageError(
                    f"{path}: cannot tell which function is {name}'s handler "
                    f"({functions or 'none'}); pass --function {name}={path}:HANDLER"
                )
            handler = functions[0]
    elif handler not in functions and f"def {handler}" not in path.read_text(errors="replace"):
        raise ByoUsageError(f"{path} has no function {handler!r} (handler of {name})")
    return FunctionSource(name, path, module, handler, runtime)


@dataclass
class EndpointUse:
    """A SageMaker endpoint name found in a source file."""

    name: str
    file: str
    line: int
    how: str  # "invoke_endpoint", "assignment", "environment default", "Predictor"


def endpoint_names(path: Path) -> list[EndpointUse]:
    """Endpoint names a Lambda source hard-codes.

    Found: a string passed as ``EndpointName=`` to ``invoke_endpoint*`` (directly or through a
    module-level constant), a string assigned to a name containing ``ENDPOINT``, the default of
    ``os.environ.get("...ENDPOINT...", "name")``, the first argument of sagemaker's ``Predictor``.
    """
    text = path.read_text(errors="replace")
    try:
        tree = ast.parse(text, filename=str(path))
    except (SyntaxError, ValueError):
        return [
            EndpointUse(m.group(2), str(path), text[: m.start()].count("\n") + 1, "assignment")
            for m in re.finditer(r"(\w*ENDPOINT\w*)\s*=\s*['\"]([^'\"]+)['\"]", text, re.I)
        ]
    constants: dict[str, tuple[str, int]] = {}
    found: list[EndpointUse] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            if isinstance(node.value.value, str):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        constants[target.id] = (node.value.value, node.lineno)
                        if "endpoint" in target.id.lower() and node.value.value:
                            found.append(
                                EndpointUse(node.value.value, str(path), node.lineno, "assignment")
                            )
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        values: list[tuple[ast.AST, str]] = []
        if called in SAGEMAKER_INVOKES:
            values += [
                (k.value, "invoke_endpoint") for k in node.keywords if k.arg == "EndpointName"
            ]
        elif called == "Predictor":
            values += [(k.value, "Predictor") for k in node.keywords if k.arg == "endpoint_name"]
            values += [(node.args[0], "Predictor")] if node.args else []
        elif called == "get" and len(node.args) == 2 and isinstance(node.args[0], ast.Constant):
            if "endpoint" in str(node.args[0].value).lower():
                values.append((node.args[1], "environment default"))
        for value, how in values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value:
                found.append(EndpointUse(value.value, str(path), value.lineno, how))
            elif isinstance(value, ast.Name) and value.id in constants:
                literal, line = constants[value.id]
                found.append(EndpointUse(literal, str(path), line, how))
    unique: dict[tuple[str, int], EndpointUse] = {}
    for use in found:
        unique.setdefault((use.name, use.line), use)
    return sorted(unique.values(), key=lambda u: u.line)


# SageMaker's EndpointName pattern (CreateEndpoint): what a string in an event must look like
ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def event_endpoint_names(event: object, source: str, text: str = "") -> list[EndpointUse]:
    """Endpoint names an event carries: a string under a key naming an endpoint
    (``endpoint``, ``EndpointName``, ``sagemaker_endpoint``...) that is a valid endpoint name."""
    found: list[EndpointUse] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                if (
                    "endpoint" in str(key).lower()
                    and isinstance(child, str)
                    and ENDPOINT_NAME.match(child)
                ):
                    at = text.find(json.dumps(child))
                    line = text[:at].count("\n") + 1 if at >= 0 else 1
                    found.append(EndpointUse(child, source, line, "event"))
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(event)
    return found


def missing_modules(path: Path, siblings: set[str]) -> list[str]:
    """Top-level imports that an AWS Python runtime does not have (AWS would fail the same way)."""
    try:
        tree = ast.parse(path.read_text(errors="replace"))
    except (SyntaxError, ValueError):
        return []
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    known = set(sys.stdlib_module_names) | RUNTIME_MODULES | siblings
    return sorted(n for n in names if n not in known)


# ------------------------------ Services the project calls ------------------------------

# boto3 client names and Step Functions integration names -> LocalStack's SERVICES names.
SERVICE_ALIASES = {"states": "stepfunctions", "sfn": "stepfunctions", "monitoring": "cloudwatch",
                   "runtime.sagemaker": "sagemaker-runtime", "eventbridge": "events",
                   "cloudwatchlogs": "logs", "cloudwatchevents": "events"}  # fmt: skip
# Served outside LocalStack: SageMaker Runtime is the local model server.
SERVED_ELSEWHERE = {"sagemaker-runtime"}
# LocalStack core services that run here with nothing downloaded (DynamoDB through the emulator
# plugin's moto provider, scones_emulator/dynamodb.py).
RUNNABLE_SERVICES = {"acm", "apigateway", "cloudformation", "cloudwatch", "config", "dynamodb",
                     "ec2", "events", "iam", "kms", "lambda", "logs", "redshift", "resource-groups",
                     "resourcegroupstaggingapi", "route53", "route53resolver", "s3", "s3control",
                     "scheduler", "secretsmanager", "ses", "sns", "sqs", "ssm", "stepfunctions",
                     "sts", "support", "swf"}  # fmt: skip
# LocalStack core has these, but they fetch a server at first use: impossible offline.
DOWNLOADING_SERVICES = {
    "kinesis": "LocalStack's Kinesis runs kinesis-mock, which it downloads at first use",
    "firehose": "LocalStack's Firehose delivers through Kinesis (kinesis-mock, downloaded)",
    "dynamodbstreams": "LocalStack's DynamoDB Streams read DynamoDB Local (Java, downloaded)",
    "opensearch": "LocalStack's OpenSearch downloads an OpenSearch cluster at first use",
    "es": "LocalStack's Elasticsearch downloads a cluster at first use",
    "transcribe": "LocalStack's Transcribe downloads a speech model at first use",
}


@dataclass
class ServiceUse:
    """An AWS service the project calls, and where."""

    service: str  # LocalStack's name (SERVICES)
    where: str  # file:line or JSON pointer


def _service_name(name: str) -> str:
    name = name.lower()
    return SERVICE_ALIASES.get(name, name)


def source_services(path: Path) -> list[ServiceUse]:
    """Services a Lambda file builds boto3 clients or resources for
    (``boto3.client("s3")``, ``session.resource(service_name="dynamodb")``)."""
    try:
        tree = ast.parse(path.read_text(errors="replace"), filename=str(path))
    except (SyntaxError, ValueError):
        return []
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr not in ("client", "resource"):
            continue
        value = (
            node.args[0]
            if node.args
            else next((k.value for k in node.keywords if k.arg == "service_name"), None)
        )
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            found.append(
                (node.lineno, ServiceUse(_service_name(value.value), f"{path}:{node.lineno}"))
            )
    return [use for _line, use in sorted(found, key=lambda f: f[0])]


def definition_services(definition: dict) -> list[ServiceUse]:
    """Services the definition's Task states call: Lambda ARNs, ``arn:aws:states:::SERVICE:...``
    integrations (``aws-sdk:SERVICE:...`` too) and Distributed Map item readers/writers."""
    found = []
    for where, _name, state, _scope in iter_states(definition):
        resources = [(f"{where}/Resource", state.get("Resource"))]
        for key in ("ItemReader", "ResultWriter"):
            if isinstance(state.get(key), dict):
                resources.append((f"{where}/{key}/Resource", state[key].get("Resource")))
        for pointer, resource in resources:
            if not isinstance(resource, str) or not resource.startswith("arn:"):
                continue
            match = STATES_INTEGRATION.match(resource)
            if match:
                target = match["rest"].removeprefix("aws-sdk:")
                found.append(ServiceUse(_service_name(target.split(":")[0]), pointer))
            elif resource.split(":")[2:3] == ["lambda"]:
                found.append(ServiceUse("lambda", pointer))
    return found


def check_services(uses: list[ServiceUse]) -> list[str]:
    """The LocalStack services to enable for ``uses``; ServiceUnavailable naming each one that
    cannot run here and why, before anything is deployed."""
    problems, needed = [], []
    for service in dict.fromkeys(u.service for u in uses):
        where = ", ".join(u.where for u in uses if u.service == service)
        if service in SERVED_ELSEWHERE:
            continue
        if service in RUNNABLE_SERVICES:
            needed.append(service)
        elif service in DOWNLOADING_SERVICES:
            problems.append(f"{service} ({where}): {DOWNLOADING_SERVICES[service]}")
        else:
            problems.append(f"{service} ({where}): LocalStack core (community) has no {service}")
    if problems:
        raise ServiceUnavailable(
            "this project uses AWS services that cannot run on this machine: " + "; ".join(problems)
        )
    return needed


def enable_services(clients: AccountClients, services: list[str]) -> list[str]:
    """Record ``services`` for every later start, and start the ones the running emulator has not
    loaded yet (it loads a service on its first request); returns those newly enabled."""
    base = set(config.EMULATOR_SERVICES.split(","))
    new = imported.add_services([s for s in services if s not in base])
    for service in services:
        probe = SERVICE_PROBES.get(service)
        if probe is None:
            continue
        try:
            getattr(clients(service), probe)()
        except Exception as err:
            raise ServiceUnavailable(
                f"{service} does not answer on the emulator at {clients.endpoint} ({err}); "
                "restart the stack (`scones down && scones up`) so it starts with it"
            ) from err
    return new


# A cheap read per service: it loads the service in a running emulator and shows it answers.
SERVICE_PROBES = {"dynamodb": "list_tables", "cloudwatch": "list_metrics",
                  "secretsmanager": "list_secrets", "ssm": "describe_parameters",
                  "sns": "list_topics", "sqs": "list_queues", "s3": "list_buckets",
                  "events": "list_rules", "logs": "describe_log_groups", "kms": "list_keys",
                  "scheduler": "list_schedules", "ses": "list_identities"}  # fmt: skip


# ------------------------------ Events: buckets and keys to stage ------------------------------


@dataclass(frozen=True)
class ObjectRef:
    """An S3 object an event points at."""

    bucket: str
    key: str


def object_refs(event: object) -> list[ObjectRef]:
    """Buckets and keys in an event: ``s3_bucket``/``bucket``/``Bucket`` beside ``s3_key``/``key``/
    ``Key`` in one object, S3 notification records, and ``s3://bucket/key`` strings."""
    found: list[ObjectRef] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            lowered = {str(k).lower(): v for k, v in value.items()}
            bucket = next(
                (
                    lowered[k]
                    for k in ("s3_bucket", "bucket", "bucketname", "bucket_name")
                    if isinstance(lowered.get(k), str)
                ),
                None,
            )
            key = next(
                (
                    lowered[k]
                    for k in ("s3_key", "key", "object_key", "objectkey")
                    if isinstance(lowered.get(k), str)
                ),
                None,
            )
            if isinstance(lowered.get("bucket"), dict) and isinstance(lowered.get("object"), dict):
                bucket = lowered["bucket"].get("name")  # S3 / EventBridge notification shape
                key = lowered["object"].get("key")
            if bucket and key:
                found.append(ObjectRef(bucket, key))
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)
        elif isinstance(value, str) and value.startswith("s3://"):
            bucket, _, key = value[5:].partition("/")
            if bucket and key:
                found.append(ObjectRef(bucket, key))

    walk(event)
    return list(dict.fromkeys(found))


def dataset_prefix(key: str) -> str | None:
    """The prefix under which the staged dataset must sit for ``key`` to be one of its images:
    ``test/x.png`` -> "", ``data/test/x.png`` -> "data/"; None if the key is not that layout."""
    match = re.match(r"^(?P<prefix>(?:.*/)?)(?:train|test|validation)/[^/]+\.(?:png|jpe?g)$", key)
    return match["prefix"] if match else None
