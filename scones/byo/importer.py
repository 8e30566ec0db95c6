"""`scones import`: a project deployed to the emulator unchanged: code, definition, endpoints."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scones import config, imported, stack
from scones.aws import (
    AccountClients,
    deterministic_zip,
    ensure_bucket,
    error_code,
    wait_function_ready,
)
from scones.byo.definition import (
    account_and_region,
    function_refs,
    load_definition,
    rejection_message,
)
from scones.byo.errors import ByoError, ByoUsageError, DefinitionRejected, NotImported
from scones.byo.sources import (
    ENDPOINT_NAME,
    EndpointUse,
    FunctionSource,
    check_services,
    dataset_prefix,
    definition_services,
    enable_services,
    endpoint_names,
    event_endpoint_names,
    map_functions,
    missing_modules,
    object_refs,
    python_files,
    source_services,
)
from scones.dataset import is_staged
from scones.stage import dataset_or_default, stage, upload_folder

LOG = logging.getLogger(__name__)

# ------------------------------ Emulator access ------------------------------


def account_clients(account: str, region: str) -> AccountClients:
    """The emulator's clients for the account and region a project's ARNs name."""
    if config.TARGET != "local":
        raise ByoUsageError(
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
        raise ByoUsageError(f"cannot read the definition {definition_path}: {err}") from err
    definition = load_definition(text)
    refs, dynamic = function_refs(definition)
    found_account, found_region = account_and_region(text, refs)
    account = account or found_account or config.ACCOUNT_ID
    region = region or found_region or config.REGION
    if not re.fullmatch(r"\d{12}", account):
        raise ByoUsageError(f"account {account!r} is not a 12-digit AWS account id")
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
    event_docs = [(path, *read_event_text(path)) for path in events or []]
    for path, event, raw in event_docs:
        uses += event_endpoint_names(event, str(path), raw)
    for endpoint in endpoints or []:
        if not ENDPOINT_NAME.match(endpoint):
            raise ByoUsageError(
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
    check_definition(clients, text)  # before anything is deployed
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


def check_definition(clients: AccountClients, text: str) -> None:
    """The target's CreateStateMachine checks, asked with ValidateStateMachineDefinition.

    The emulator plugin's fidelity patch gives AWS's checks and AWS's message there
    (``Invalid State Machine Definition: '...'``, one diagnostic); AWS itself answers one
    diagnostic per problem (code, message, location). DefinitionRejected either way.
    """
    answer = clients("stepfunctions").validate_state_machine_definition(
        definition=text, type="STANDARD", severity="ERROR"
    )
    if answer["result"] == "OK":
        return
    diagnostics = [
        f"{d['code']}: {d['message']} at {d['location']}" if d.get("location") else d["message"]
        for d in answer.get("diagnostics") or []
    ]
    if len(diagnostics) == 1 and diagnostics[0].startswith("Invalid State Machine Definition"):
        raise DefinitionRejected(diagnostics[0], diagnostics)  # already CreateStateMachine's words
    if not diagnostics:  # LocalStack answers FAIL without a diagnostic on an error of its own
        diagnostics = ["the emulator refused the definition without saying why (see its log)"]
    raise DefinitionRejected(rejection_message(diagnostics), diagnostics)


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


def read_event(path: Path | str) -> object:
    """An event from a JSON file, or inline JSON text."""
    return read_event_text(path)[0]


def read_event_text(path: Path | str) -> tuple[object, str]:
    """An event from a JSON file, or inline JSON text, and that text."""
    text = str(path)
    if text.lstrip().startswith(("{", "[")):
        source, raw = "inline JSON", text
    else:
        source = text
        try:
            raw = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise ByoUsageError(f"cannot read the event {path}: {err}") from err
    try:
        return json.loads(raw), raw
    except ValueError as err:
        raise ByoUsageError(f"the event in {source} is not JSON: {err}") from err


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
