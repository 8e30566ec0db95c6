"""`scones import` / `scones execute`: run an existing Step Functions + Lambda project offline.

A project exported from the AWS console (definition JSON with account-ID ARNs, Lambda files written
in the console, a SageMaker endpoint name in the code, an S3 bucket in the test events) is deployed
to the emulator *unchanged*:

- the definition text is sent as is, under the account and region its ARNs name (LocalStack keeps
  state per account: a 12-digit access key id is that account; the region comes from the client);
- each function the definition names is created from the user's source file, with the handler
  they give; ARN qualifiers (``$LATEST``, a version number, an alias) are created to match;
- the SageMaker endpoint names found in the sources and the events (or given with ``--endpoint``)
  are served by the local model server (``SCONES_ENDPOINT_ALIASES``, kept across restarts); the
  functions get ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``;
- the buckets and keys in the events are created and filled with the staged dataset.

Before anything is deployed the definition is checked like CreateStateMachine does on AWS
(https://docs.aws.amazon.com/step-functions/latest/apireference/API_CreateStateMachine.html):
what LocalStack accepts but AWS rejects is refused here with AWS's message (see ``validate``).
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from scones import SconesError, config, imported, stack
from scones.aws import (
    AccountClients,
    AwsError,
    deterministic_zip,
    ensure_bucket,
    error_code,
    wait_function_ready,
)
from scones.dataset import is_staged
from scones.executions import history, wait_for_end
from scones.stage import StageError, dataset_or_default, stage, upload_folder

LOG = logging.getLogger(__name__)

SHORTEN_OVER = 80  # characters: longer base64 strings are shown as their start plus a length
# Modules every AWS Python runtime has besides the standard library.
RUNTIME_MODULES = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six",
                   "awslambdaric", "simplejson"}  # fmt: skip
SAGEMAKER_INVOKES = {"invoke_endpoint", "invoke_endpoint_async",
                     "invoke_endpoint_with_response_stream"}  # fmt: skip

# arn:partition:lambda:region:account:function:name[:qualifier] (the Lambda API's own pattern)
LAMBDA_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d):"
    r"(?P<account>\d{12}):function:(?P<name>[a-zA-Z0-9_-]{1,64})"
    r"(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]{1,128}))?$"
)
# FunctionName forms Lambda accepts besides a full ARN: name[:qualifier], account:function:name[:q]
PARTIAL_FUNCTION = re.compile(
    r"^(?:(?P<account>\d{12}):function:)?(?P<name>[a-zA-Z0-9_-]{1,64})"
    r"(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]{1,128}))?$"
)
ANY_ARN_ACCOUNT = re.compile(r"arn:aws[a-zA-Z-]*:[a-z0-9-]+:([a-z]{2}-[a-z]+-\d):(\d{12}):")
# Optimized integrations (https://docs.aws.amazon.com/step-functions/latest/dg/integrate-optimized.html)
# we know completely: service -> action -> the integration patterns AWS offers for it.
INTEGRATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "lambda": {"invoke": ("", ".waitForTaskToken")},
    "sns": {"publish": ("", ".waitForTaskToken")},
    "sqs": {"sendMessage": ("", ".waitForTaskToken")},
    "states": {"startExecution": ("", ".sync", ".sync:2", ".waitForTaskToken")},
    "events": {"putEvents": ("", ".waitForTaskToken")},
    "dynamodb": {a: ("",) for a in ("getItem", "putItem", "updateItem", "deleteItem")},
}
STATES_INTEGRATION = re.compile(r"^arn:aws[a-zA-Z-]*:states:::(?P<rest>.+)$")
ACTIVITY_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:states:[a-z]{2}(-gov)?-[a-z]+-\d:\d{12}:activity:[a-zA-Z0-9_-]{1,80}$"
)


class ByoError(SconesError):
    """An existing project cannot be imported or run as given."""


class DefinitionRejected(ByoError):
    """The state machine definition is one AWS's CreateStateMachine would refuse."""

    def __init__(self, message: str, diagnostics: list[str]) -> None:
        super().__init__(message)
        self.code = "InvalidDefinition"
        self.diagnostics = diagnostics


class UnmappedFunction(ByoError):
    """A function the definition calls has no source file among those given."""


class ServiceUnavailable(ByoError):
    """The project uses an AWS service that cannot run on this machine."""


class NotImported(ByoError):
    """`scones execute` names a state machine that `scones import` has not deployed."""


# ------------------------------ Definition: parse and check ------------------------------


@dataclass(frozen=True)
class FunctionRef:
    """One Lambda function a Task state calls, as written in the definition."""

    name: str
    account: str | None
    region: str | None
    qualifier: str | None  # None = unqualified; "$LATEST", "3" or an alias name
    where: str  # JSON pointer of the field, e.g. /States/Classify/Parameters/FunctionName


def load_definition(text: str) -> dict:
    """The definition as JSON; DefinitionRejected (AWS's INVALID_JSON_DESCRIPTION) if it is not."""
    try:
        definition = json.loads(text)
    except ValueError as err:
        message = f"INVALID_JSON_DESCRIPTION: {err}"
        raise DefinitionRejected(_rejection([message]), [message]) from err
    if not isinstance(definition, dict):
        message = "SCHEMA_VALIDATION_FAILED: Definition must be a valid JSON object"
        raise DefinitionRejected(_rejection([message]), [message])
    return definition


def _rejection(diagnostics: list[str]) -> str:
    """CreateStateMachine's InvalidDefinition message for these diagnostics."""
    return f"Invalid State Machine Definition: '{', '.join(diagnostics)}'"


def iter_states(definition: dict, pointer: str = ""):
    """(JSON pointer, name, state) of every state, Parallel branches and Map processors included."""
    states = definition.get("States")
    if not isinstance(states, dict):
        return
    for name, state in states.items():
        if not isinstance(state, dict):
            continue
        where = f"{pointer}/States/{name}"
        yield where, name, state, states
        for i, branch in enumerate(state.get("Branches") or []):
            if isinstance(branch, dict):
                yield from iter_states(branch, f"{where}/Branches[{i}]")
        for key in ("Iterator", "ItemProcessor"):
            if isinstance(state.get(key), dict):
                yield from iter_states(state[key], f"{where}/{key}")


def validate(definition: dict) -> list[str]:
    """What AWS's CreateStateMachine refuses and LocalStack 2026.3.0 accepts, in AWS's words.

    Checked (each message is AWS's format, ``CODE: message at /pointer``):

    - a Task ``Resource`` that is not an ARN: ``SCHEMA_VALIDATION_FAILED: Value is not a valid
      resource ARN``;
    - an ARN that names no Lambda function, activity or optimized integration AWS offers (a topic
      ARN used as the Resource, ``arn:aws:states::sns:publish``, ``sns:publish.sync``):
      ``SCHEMA_VALIDATION_FAILED: The resource provided ... is not recognized. The value is not a
      valid resource ARN, or the resource is not available in this region.``;
    - a ``Next``/``Default`` naming no state of its scope: ``MISSING_TRANSITION_TARGET: Missing
      'Next' target: X``.

    Integrations outside ``INTEGRATIONS`` (glue, ecs, aws-sdk:*, ...) are left to LocalStack.
    """
    problems: list[str] = []
    for where, _name, state, scope in iter_states(definition):
        if state.get("Type") == "Task":
            problem = _resource_problem(state.get("Resource"))
            if problem:
                problems.append(f"SCHEMA_VALIDATION_FAILED: {problem} at {where}/Resource")
        targets = [("Next", state.get("Next")), ("Default", state.get("Default"))]
        targets += [
            ("Next", c.get("Next")) for c in state.get("Choices") or [] if isinstance(c, dict)
        ]
        targets += [
            ("Next", c.get("Next")) for c in state.get("Catch") or [] if isinstance(c, dict)
        ]
        for key, target in targets:
            if isinstance(target, str) and target not in scope:
                problems.append(
                    f"MISSING_TRANSITION_TARGET: Missing '{key}' target: {target} at {where}/{key}"
                )
    return problems


def _resource_problem(resource: object) -> str | None:
    if not isinstance(resource, str) or not resource.startswith("arn:"):
        return "Value is not a valid resource ARN"
    not_recognized = (
        f"The resource provided {resource} is not recognized. The value is not a valid resource "
        "ARN, or the resource is not available in this region."
    )
    service = resource.split(":")[2] if resource.count(":") >= 2 else ""
    if service == "lambda":
        return None if LAMBDA_ARN.match(resource) else not_recognized
    if service != "states":
        return not_recognized  # a topic, queue or bucket ARN is not something a Task can run
    if ACTIVITY_ARN.match(resource):
        return None
    match = STATES_INTEGRATION.match(resource)
    if not match:
        return not_recognized
    target = match.group("rest")
    if target.startswith("aws-sdk:"):
        parts = target.split(":")
        pattern = parts[-1][parts[-1].find(".") :] if "." in parts[-1] else ""
        ok = len(parts) == 3 and all(parts) and pattern in ("", ".waitForTaskToken")
        return None if ok else not_recognized
    service_name, _, action = target.partition(":")
    if service_name not in INTEGRATIONS:
        return None  # an integration we do not model: LocalStack decides
    action, dot, pattern = action.partition(".")
    allowed = INTEGRATIONS[service_name].get(action)
    if allowed is None or (dot + pattern) not in allowed:
        return not_recognized
    return None


def function_refs(definition: dict) -> tuple[list[FunctionRef], list[str]]:
    """Lambda functions the Task states call, and fields naming one only at run time."""
    refs: list[FunctionRef] = []
    dynamic: list[str] = []
    for where, _name, state, _scope in iter_states(definition):
        if state.get("Type") != "Task" or not isinstance(state.get("Resource"), str):
            continue
        resource = state["Resource"]
        match = LAMBDA_ARN.match(resource)
        if match:
            refs.append(
                FunctionRef(
                    match["name"],
                    match["account"],
                    match["region"],
                    match["qualifier"],
                    f"{where}/Resource",
                )
            )
            continue
        if not re.match(r"^arn:aws[a-zA-Z-]*:states:::lambda:invoke", resource):
            continue
        for block in ("Parameters", "Arguments"):
            args = state.get(block)
            if not isinstance(args, dict):
                continue
            if "FunctionName.$" in args:
                dynamic.append(f"{where}/{block}/FunctionName.$")
            value = args.get("FunctionName")
            if not isinstance(value, str):
                continue
            if value.startswith("{%"):
                dynamic.append(f"{where}/{block}/FunctionName")
                continue
            ref = parse_function_name(value, f"{where}/{block}/FunctionName")
            if ref:
                refs.append(ref)
    return refs, dynamic


def parse_function_name(value: str, where: str) -> FunctionRef | None:
    """A FunctionName in any form Lambda's Invoke accepts (ARN, partial ARN, name[:qualifier])."""
    match = LAMBDA_ARN.match(value)
    if match:
        return FunctionRef(
            match["name"], match["account"], match["region"], match["qualifier"], where
        )
    match = PARTIAL_FUNCTION.match(value)
    if match:
        return FunctionRef(match["name"], match["account"], None, match["qualifier"], where)
    return None


def account_and_region(
    definition_text: str, refs: list[FunctionRef]
) -> tuple[str | None, str | None]:
    """The account and region most of the definition's ARNs name (Lambda ARNs first)."""
    accounts = Counter(r.account for r in refs if r.account)
    regions = Counter(r.region for r in refs if r.region)
    if not accounts or not regions:  # topic, queue, activity ARNs tell it too
        for region, account in ANY_ARN_ACCOUNT.findall(definition_text):
            accounts.setdefault(account, 0)
            regions.setdefault(region, 0)
    account = accounts.most_common(1)[0][0] if accounts else None
    region = regions.most_common(1)[0][0] if regions else None
    return account, region


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
            raise ByoError(f"{source}: no such file or folder (give Lambda .py files or folders)")
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
            raise ByoError(f"--function {name}={spec}: no file {path}")
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
                raise ByoError(
                    f"{path}: cannot tell which function is {name}'s handler "
                    f"({functions or 'none'}); pass --function {name}={path}:HANDLER"
                )
            handler = functions[0]
    elif handler not in functions and f"def {handler}" not in path.read_text(errors="replace"):
        raise ByoError(f"{path} has no function {handler!r} (handler of {name})")
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


# ------------------------------ Emulator access ------------------------------


def account_clients(account: str, region: str) -> AccountClients:
    """The emulator's clients for the account and region a project's ARNs name."""
    if config.TARGET != "local":
        raise ByoError(
            "scones import/execute run a project on the local emulator; unset SCONES_TARGET "
            "(on AWS your project already runs where it is)"
        )
    return AccountClients(account, region)


# ------------------------------ Model server: endpoint names ------------------------------


def served_endpoints() -> list[str] | None:
    """The endpoint names the model server answers to; None when it is not running."""
    try:
        with urllib.request.urlopen(config.model_url() + "/health", timeout=3) as response:
            return list(json.loads(response.read()).get("endpoints") or [])
    except (OSError, urllib.error.URLError, ValueError):
        return None


def ensure_endpoints(names: list[str]) -> tuple[str, list[str]]:
    """Make the model server answer to ``names`` too; returns (what was done, warnings).

    The server reads its names (SCONES_ENDPOINT_NAME + SCONES_ENDPOINT_ALIASES) at start, so a
    server started by scones is restarted with the new aliases; one started otherwise is left
    alone and the user is told how to start it.
    """
    warnings: list[str] = []
    if not names:
        return "no endpoint names in the sources or events", warnings
    known = imported.add_endpoint_names(names)
    served = served_endpoints()
    if served is not None and all(n in served for n in names):
        return f"model server at {config.model_url()} already answers {', '.join(names)}", warnings
    aliases = list(dict.fromkeys([*config.ENDPOINT_ALIASES, *known]))
    os.environ["SCONES_ENDPOINT_ALIASES"] = ",".join(aliases)  # read by the server we start
    component = next(c for c in stack.components() if c.name == "model")
    ours = next(s for s in stack.status() if s.name == "model").pid is not None
    if served is not None and not ours:
        warnings.append(
            f"the model server at {config.model_url()} was not started by scones and does not "
            f"answer {', '.join(n for n in names if n not in served)}; restart it with "
            f"SCONES_ENDPOINT_ALIASES={','.join(aliases)}"
        )
        return "model server not reconfigured", warnings
    if not (config.MODEL_DIR / "model.onnx").exists():
        warnings.append(
            f"no model at {config.MODEL_DIR}: the endpoint {', '.join(names)} will answer once the "
            "model server runs (`scones train`, then `scones up`)"
        )
        return "model server not started", warnings
    if ours:
        stack.stop(component)
    stack.start(component, config.EMULATOR_START_TIMEOUT)
    return f"model server at {config.model_url()} now answers {', '.join(names)}", warnings


# ------------------------------ Runtimes ------------------------------


def runtime_interpreters(runtimes: set[str]) -> dict[str, str | None]:
    """The Python version the emulator's executor runs each python3.X runtime with.

    Asks the executor itself (its ``interpreter_for``, in the emulator's venv), so the answer is
    the one functions will see; None when it cannot tell (emulator venv not installed).
    """
    python = config.EMULATOR_VENV / "bin" / "python"
    if not python.exists() or not runtimes:
        return {r: None for r in runtimes}
    probe = (
        "import json, logging, sys\n"
        "logging.disable(logging.CRITICAL)\n"
        "from scones_emulator.runtimes import interpreter_for\n"
        "out = {}\n"
        "for runtime in sys.argv[1:]:\n"
        "    try:\n"
        "        out[runtime] = interpreter_for(runtime)[0]\n"
        "    except Exception:\n"
        "        out[runtime] = None\n"
        "print(json.dumps(out))\n"
    )
    try:
        done = subprocess.run(
            [str(python), "-c", probe, *sorted(runtimes)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as err:
        LOG.debug("cannot ask the executor about runtimes: %s", err)
        return {r: None for r in runtimes}


# ------------------------------ Import ------------------------------


@dataclass
class ImportResult:
    """What `scones import` deployed, and what the user should know about it."""

    name: str
    account: str
    region: str
    state_machine_arn: str
    definition: str
    functions: dict[str, dict] = field(default_factory=dict)  # name -> handler, runtime, arn, ...
    endpoints: list[dict] = field(default_factory=list)
    endpoint_status: str = ""
    staged: list[dict] = field(default_factory=list)  # bucket, prefix, objects
    services: list[str] = field(default_factory=list)  # LocalStack services the project calls
    services_enabled: list[str] = field(default_factory=list)  # of those, enabled by this import
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _record_dir() -> Path:
    return config.STATE_DIR / "byo" / "imports"


def load_record(name: str) -> dict:
    """The import record of state machine ``name``; NotImported if there is none."""
    path = _record_dir() / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        known = sorted(p.stem for p in _record_dir().glob("*.json"))
        raise NotImported(
            f"no imported state machine {name!r} (imported: {', '.join(known) or 'none'}); "
            "run `scones import DEFINITION.json LAMBDA.py ...` first"
        ) from err


def zip_function(source: FunctionSource) -> bytes:
    """The function's file as a one-file zip under its module name, byte-identical per content."""
    return deterministic_zip(f"{source.module}.py", source.path.read_bytes())


def import_project(
    definition_path: Path,
    sources: list[Path],
    *,
    name: str | None = None,
    functions: dict[str, str] | None = None,
    runtime: str | None = None,
    runtimes: dict[str, str] | None = None,
    events: list[Path] | None = None,
    environment: dict[str, str] | None = None,
    account: str | None = None,
    region: str | None = None,
    timeout: int | None = None,
    memory: int | None = None,
    dataset: Path | None = None,
    endpoints: list[str] | None = None,
) -> ImportResult:
    """Deploy an exported definition and its Lambda sources to the emulator, unchanged.

    :param definition_path: the state machine definition as exported (JSON); never modified.
    :param sources: Lambda .py files or folders holding them.
    :param functions: function name -> ``FILE[:HANDLER]`` where the automatic match is not enough.
    :param runtime: python3.X for every function (default SCONES_LAMBDA_RUNTIME); ``runtimes``
        overrides it per function.
    :param events: test events whose buckets/keys must exist (the dataset is staged there).
    :param environment: extra variables for every function.
    :param account: default: the account the definition's ARNs name, else SCONES_ACCOUNT_ID.
    :param region: default: the region the definition's ARNs name, else SCONES_REGION.
    :param dataset: a staged folder (train.lst, test.lst, PNGs); default `scones stage`'s.
    :param endpoints: endpoint names to serve besides those found in the sources and events.
    """
    began = time.monotonic()
    definition_path = Path(definition_path)
    try:
        text = definition_path.read_text(encoding="utf-8")
    except OSError as err:
        raise ByoError(f"cannot read the definition {definition_path}: {err}") from err
    definition = load_definition(text)
    problems = validate(definition)
    if problems:
        raise DefinitionRejected(_rejection(problems), problems)
    refs, dynamic = function_refs(definition)
    found_account, found_region = account_and_region(text, refs)
    account = account or found_account or config.ACCOUNT_ID
    region = region or found_region or config.REGION
    if not re.fullmatch(r"\d{12}", account):
        raise ByoError(f"account {account!r} is not a 12-digit AWS account id")
    name = name or re.sub(r"[^A-Za-z0-9_-]", "-", definition_path.stem)[:80]
    warnings: list[str] = []
    if dynamic:
        warnings.append(
            f"function names chosen at run time ({', '.join(dynamic)}): every source file's "
            "function must then exist; pass --function NAME=FILE for each"
        )
    files = python_files(sources)
    names = list(dict.fromkeys(r.name for r in refs)) + [
        n for n in (functions or {}) if n not in {r.name for r in refs}
    ]
    mapped = map_functions(
        names, files, functions or {}, runtimes or {}, runtime or config.LAMBDA_RUNTIME
    )
    # Where each function must exist: its own account/region if the ARN names one.
    homes: dict[str, set[tuple[str, str]]] = {n: set() for n in mapped}
    qualifiers: dict[str, set[str]] = {n: set() for n in mapped}
    for ref in refs:
        homes[ref.name].add((ref.account or account, ref.region or region))
        if ref.qualifier and ref.qualifier != "$LATEST":
            qualifiers[ref.name].add(ref.qualifier)
    for fn in mapped:
        homes[fn] = homes[fn] or {(account, region)}

    uses = [use for path in {s.path for s in mapped.values()} for use in endpoint_names(path)]
    event_docs = [(path, *_read_event_text(path)) for path in events or []]
    for path, event, raw in event_docs:
        uses += event_endpoint_names(event, str(path), raw)
    for endpoint in endpoints or []:
        if not ENDPOINT_NAME.match(endpoint):
            raise ByoError(
                f"--endpoint {endpoint!r} is not a SageMaker endpoint name (letters, digits and "
                "hyphens, at most 63, starting with a letter or digit)"
            )
        uses.append(EndpointUse(endpoint, "--endpoint", 0, "--endpoint"))
    for source in mapped.values():
        siblings = {s.module for s in mapped.values()} | {p.stem for p in files}
        lacking = missing_modules(source.path, siblings)
        if lacking:
            warnings.append(
                f"{source.path.name} imports {', '.join(lacking)}, which the {source.runtime} "
                "runtime does not have: the function fails with Runtime.ImportModuleError (as on "
                "AWS without a layer)"
            )
    for runtime_name, version in runtime_interpreters({s.runtime for s in mapped.values()}).items():
        wanted = runtime_name.removeprefix("python")
        if version and version != wanted:
            warnings.append(
                f"no Python {wanted} on this machine for runtime {runtime_name}: the emulator runs "
                f"it under Python {version} (error messages may differ from AWS's)"
            )

    service_uses = definition_services(definition) + [
        use for path in {s.path for s in mapped.values()} for use in source_services(path)
    ]
    services = check_services(service_uses)  # before anything is deployed
    clients = account_clients(account, region)
    clients.check()
    result = ImportResult(name, account, region, "", text, warnings=warnings)
    result.services = services
    result.services_enabled = enable_services(clients, services)
    result.endpoints = [asdict(u) for u in uses]
    result.endpoint_status, endpoint_warnings = ensure_endpoints(
        list(dict.fromkeys(u.name for u in uses))
    )
    result.warnings += endpoint_warnings

    # The state machine first: if the emulator refuses it, nothing else was deployed.
    role = f"arn:aws:iam::{account}:role/service-role/StepFunctions-{name}-role"
    result.state_machine_arn = _deploy_state_machine(clients, name, text, role)
    env = {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": config.model_url(), **(environment or {})}
    for fn, source in mapped.items():
        arns = []
        for fn_account, fn_region in sorted(homes[fn]):
            where = (
                clients
                if (fn_account, fn_region) == (account, region)
                else account_clients(fn_account, fn_region)
            )
            arns.append(
                _deploy_function(
                    where,
                    source,
                    env,
                    sorted(qualifiers[fn]),
                    timeout or config.LAMBDA_TIMEOUT,
                    memory or config.LAMBDA_MEMORY,
                )
            )
        result.functions[fn] = {
            "file": str(source.path),
            "handler": source.handler,
            "runtime": source.runtime,
            "arns": arns,
            "qualifiers": sorted(qualifiers[fn]),
        }
    for _path, event, _raw in event_docs:
        result.staged += stage_for_event(clients, event, dataset, result.warnings)
    result.seconds = round(time.monotonic() - began, 2)
    _record_dir().mkdir(parents=True, exist_ok=True)
    record = result.to_dict()
    record["events"] = [str(p) for p in events or []]
    record["dataset"] = str(dataset) if dataset else None
    (_record_dir() / f"{name}.json").write_text(json.dumps(record, indent=1))
    return result


def _deploy_state_machine(clients: AccountClients, name: str, text: str, role: str) -> str:
    sfn = clients("stepfunctions")
    arn = f"arn:aws:states:{clients.region}:{clients.account}:stateMachine:{name}"
    try:
        try:
            sfn.describe_state_machine(stateMachineArn=arn)
        except sfn.exceptions.StateMachineDoesNotExist:
            return sfn.create_state_machine(
                name=name, definition=text, roleArn=role, type="STANDARD"
            )["stateMachineArn"]
        sfn.update_state_machine(stateMachineArn=arn, definition=text, roleArn=role)
        return arn
    except Exception as err:
        if error_code(err) in ("InvalidDefinition", "ValidationException"):
            message = getattr(err, "response", {}).get("Error", {}).get("Message", str(err))
            raise DefinitionRejected(
                f"the emulator refused the definition ({error_code(err)}): {message}", [message]
            ) from err
        raise


def _deploy_function(
    clients: AccountClients,
    source: FunctionSource,
    env: dict[str, str],
    qualifiers: list[str],
    timeout: int,
    memory: int,
) -> str:
    """Create the function afresh (published versions are immutable), then its versions/aliases."""
    lam = clients("lambda")
    try:
        lam.delete_function(FunctionName=source.name)
    except lam.exceptions.ResourceNotFoundException:
        pass
    role = f"arn:aws:iam::{clients.account}:role/service-role/{source.name}-role"
    created = lam.create_function(
        FunctionName=source.name,
        Runtime=source.runtime,
        Handler=source.handler,
        Role=role,
        Code={"ZipFile": zip_function(source)},
        Timeout=timeout,
        MemorySize=memory,
        Environment={"Variables": env},
        Description=f"imported by scones from {source.path.name}",
    )
    wait_function_ready(lam, source.name, ByoError)
    versions = sorted(int(q) for q in qualifiers if q.isdigit())
    aliases = [q for q in qualifiers if not q.isdigit()]
    published = 0
    # Lambda publishes a version only when something changed: change the description each time.
    for wanted in range(1, max(versions + ([1] if aliases else [0])) + 1):
        if published:
            lam.update_function_configuration(
                FunctionName=source.name, Description=f"imported by scones (v{wanted})"
            )
            wait_function_ready(lam, source.name, ByoError)
        published = int(lam.publish_version(FunctionName=source.name)["Version"])
        LOG.debug("%s: published version %s (wanted %s)", source.name, published, wanted)
    for alias in aliases:
        lam.create_alias(FunctionName=source.name, Name=alias, FunctionVersion=str(published))
    return created["FunctionArn"]


def _read_event(path: Path | str) -> object:
    """An event from a JSON file, or inline JSON text."""
    return _read_event_text(path)[0]


def _read_event_text(path: Path | str) -> tuple[object, str]:
    """An event from a JSON file, or inline JSON text, and that text."""
    text = str(path)
    if text.lstrip().startswith(("{", "[")):
        source, raw = "inline JSON", text
    else:
        source = text
        try:
            raw = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise ByoError(f"cannot read the event {path}: {err}") from err
    try:
        return json.loads(raw), raw
    except ValueError as err:
        raise ByoError(f"the event in {source} is not JSON: {err}") from err


# ------------------------------ Staging ------------------------------


def stage_for_event(
    clients: AccountClients, event: object, dataset: Path | None, warnings: list[str]
) -> list[dict]:
    """Create each bucket the event names and put the staged dataset under the key's prefix."""
    done = []
    s3 = clients("s3")
    wanted: dict[tuple[str, str], list[str]] = {}
    for ref in object_refs(event):
        prefix = dataset_prefix(ref.key)
        ensure_bucket(s3, ref.bucket, clients.region)
        if prefix is None:
            if not _exists(s3, ref.bucket, ref.key):
                warnings.append(
                    f"s3://{ref.bucket}/{ref.key} is not a dataset image path "
                    "(PREFIX/test/NAME.png); upload it yourself"
                )
            continue
        wanted.setdefault((ref.bucket, prefix), []).append(ref.key)
    folder: Path | None = None
    for (bucket, prefix), keys in wanted.items():
        if all(_exists(s3, bucket, key) for key in keys):
            done.append({"bucket": bucket, "prefix": prefix, "uploaded": 0, "present": True})
            continue
        folder = folder or staged_dataset(dataset)
        result = upload_folder(folder, bucket, prefix, s3=s3)
        done.append(
            {"bucket": bucket, "prefix": prefix, "uploaded": result.uploaded, "present": False}
        )
        for key in keys:
            if not _exists(s3, bucket, key):
                warnings.append(f"s3://{bucket}/{key} is not in the dataset at {folder}")
    return done


def staged_dataset(dataset: Path | None) -> Path:
    """A staged folder (stage.json marker) of ``dataset`` (default: `scones stage`'s)."""
    source = dataset_or_default(dataset, "--dataset")
    if is_staged(source):
        return source
    if not (source / "test.lst").exists():
        raise ByoError(
            f"no dataset at {source} to stage into the events' buckets; pass --dataset FOLDER "
            "(train/ test/ PNGs with train.lst, test.lst) or upload the images yourself"
        )
    out = config.STATE_DIR / "byo" / "datasets" / re.sub(r"\W", "-", str(source.resolve()))[-60:]
    if is_staged(out):
        return out
    summary = stage(source=source, upload=False, out=out)
    return Path(summary.out)


def _exists(s3, bucket: str, key: str) -> bool:  # noqa: ANN001
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except Exception as err:
        if error_code(err) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


# ------------------------------ Execute ------------------------------


@dataclass
class Execution:
    """One finished execution: DescribeExecution plus its full history."""

    described: dict
    events: list[dict]
    seconds: float

    @property
    def status(self) -> str:
        return self.described["status"]

    def to_dict(self) -> dict:
        return json.loads(
            json.dumps(
                {"execution": self.described, "events": self.events, "seconds": self.seconds},
                default=_json_default,
            )
        )


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def execute(
    name: str,
    event: Path | str | dict,
    *,
    timeout: float | None = None,
    account: str | None = None,
    region: str | None = None,
) -> Execution:
    """Start an imported state machine with ``event`` and wait for the end of the execution."""
    record = load_record(name)
    account, region = account or record["account"], region or record["region"]
    clients = account_clients(account, region)
    clients.check()
    payload = event if isinstance(event, dict) else _read_event(event)
    warnings: list[str] = []
    asked = [u.name for u in event_endpoint_names(payload, "the input")]
    served = served_endpoints()
    if asked and served is not None and not set(asked) <= set(served):
        warnings += ensure_endpoints(list(dict.fromkeys(asked)))[1]  # before the run, not in it
    dataset = Path(record["dataset"]) if record.get("dataset") else None
    if object_refs(payload):
        try:
            stage_for_event(clients, payload, dataset, warnings)
        except (ByoError, StageError, AwsError) as err:  # the run may still work: say, go on
            warnings.append(str(err))
    for warning in warnings:
        LOG.warning("%s", warning)
    sfn = clients("stepfunctions")
    arn = f"arn:aws:states:{region}:{account}:stateMachine:{name}"
    began = time.monotonic()
    try:
        execution_arn = sfn.start_execution(
            stateMachineArn=arn, name=f"scones-{uuid.uuid4().hex[:12]}", input=json.dumps(payload)
        )["executionArn"]
    except sfn.exceptions.StateMachineDoesNotExist as err:
        raise NotImported(f"{arn} does not exist (emulator restarted?); import it again") from err
    described = wait_for_end(sfn, execution_arn, timeout or config.RUN_TIMEOUT, max_poll_s=0.5)
    seconds = round(time.monotonic() - began, 3)
    return Execution(described, history(sfn, execution_arn), seconds)


# ------------------------------ Console-like rendering ------------------------------

BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def shorten(value: object) -> object:
    """Long base64 strings replaced by their start and length, everywhere in a JSON value."""
    if isinstance(value, dict):
        return {k: shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shorten(v) for v in value]
    if isinstance(value, str) and len(value) > SHORTEN_OVER:
        if BASE64.match(value):
            return f"{value[:24]}…({len(value):,} chars)"
        if value[:1] in "{[":  # a body from json.dumps: shorten inside, keep it a string
            try:
                return json.dumps(shorten(json.loads(value)), ensure_ascii=False)
            except ValueError:
                pass
    return value


def short_json(text: str | None) -> str:
    """A JSON document on one line with long base64 shortened (text as is if it is not JSON)."""
    if text is None:
        return ""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return json.dumps(shorten(value), ensure_ascii=False)


def _details(event: dict) -> dict:
    return next((v for k, v in event.items() if k.endswith("EventDetails")), {}) or {}


def render(execution: Execution) -> list[str]:
    """The execution as the console's Graph/Table views tell it: each state entered and exited
    with its input and output, task calls, failures and retries, then the status, error, cause."""
    d = execution.described
    lines = [
        f"Execution {d['executionArn']}",
        f"Status    {d['status']}  ({execution.seconds:.2f} s)",
        f"Input     {short_json(d.get('input'))}",
        "",
    ]
    depth = 0
    attempts: dict[str, int] = {}  # state name -> task attempts so far
    last_failure: dict[str, datetime] = {}
    current: list[str] = []
    for event in execution.events:
        kind, details, eid = event["type"], _details(event), event["id"]
        pad = "  " * depth
        if kind.endswith("StateEntered"):
            current.append(details.get("name", "?"))
            lines.append(
                f"#{eid:<3} {pad}▶ {details.get('name')}  ({kind[: -len('StateEntered')]})"
            )
            lines.append(f"     {pad}    input   {short_json(details.get('input'))}")
        elif kind.endswith("StateExited"):
            if current:
                current.pop()
            lines.append(f"#{eid:<3} {pad}◀ {details.get('name')}")
            lines.append(f"     {pad}    output  {short_json(details.get('output'))}")
        elif kind in ("TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"):
            state = current[-1] if current else "?"
            attempts[state] = attempts.get(state, 0) + 1
            if attempts[state] > 1:
                waited = ""
                if state in last_failure:
                    waited = (
                        f" after {(event['timestamp'] - last_failure[state]).total_seconds():.1f} s"
                    )
                lines.append(f"     {pad}    ↻ retry {attempts[state] - 1}{waited}")
            target = (
                f"{details.get('resourceType')}:{details.get('resource')}"
                if kind == "TaskScheduled"
                else details.get("resource", "")
            )
            extra = ""
            if kind == "TaskScheduled":
                try:
                    params = json.loads(details.get("parameters") or "{}")
                    if isinstance(params, dict) and "FunctionName" in params:
                        extra = f" {params['FunctionName']}"
                except ValueError:
                    pass
            lines.append(f"#{eid:<3} {pad}    {kind} {target}{extra}")
        elif kind.endswith(("Failed", "TimedOut", "Aborted")) and not kind.startswith("Execution"):
            state = current[-1] if current else "?"
            last_failure[state] = event["timestamp"]
            lines.append(f"#{eid:<3} {pad}    ✗ {kind}: {details.get('error', '')}")
            if details.get("cause"):
                lines.append(f"     {pad}      cause {short_json(details.get('cause'))}")
        elif kind in ("ParallelStateStarted", "MapStateStarted"):
            lines.append(f"#{eid:<3} {pad}    {kind}")
            depth += 1
        elif kind in (
            "ParallelStateSucceeded",
            "MapStateSucceeded",
            "ParallelStateFailed",
            "MapStateFailed",
            "ParallelStateAborted",
            "MapStateAborted",
        ):
            depth = max(0, depth - 1)
            lines.append(f"#{eid:<3} {'  ' * depth}    {kind}")
        elif kind.startswith(("Map", "Parallel")) or kind.endswith("Succeeded"):
            lines.append(f"#{eid:<3} {pad}    {kind}")
    lines.append("")
    if d["status"] == "SUCCEEDED":
        lines.append(f"Output    {short_json(d.get('output'))}")
    else:
        lines.append(f"Error     {d.get('error', '')}")
        cause = d.get("cause") or ""
        lines.append(
            f"Cause     {cause}" if len(cause) < 2000 else f"Cause     {short_json(cause)}"
        )
    return lines


# ------------------------------ Commands ------------------------------


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise ByoError(f"{option} expects NAME=VALUE, got {value!r}")
        pairs[key] = rest
    return pairs
