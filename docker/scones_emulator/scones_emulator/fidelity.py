"""Make LocalStack's Step Functions behave as AWS's where they differ (monkeypatches).

Unlike the speedups these change what an execution records, so they always apply.

1. A Task whose ``Resource`` is a Lambda function ARN (``LambdaFunctionFailed``) carries the
   function's error payload exactly as the Lambda runtime wrote it. LocalStack re-serializes it
   compactly for both Lambda integrations; AWS does so only for ``arn:aws:states:::lambda:invoke``
   (which parses the payload). Evidence: LocalStack's own AWS-recorded snapshots of one Python
   function raising, recorded the same day: ``error_handling/test_task_lambda.snapshot.json``
   (direct ARN: ``{"errorMessage": "Some exception was raised.", "errorType": ...``, and the
   tests skip ``$..Cause`` there) and ``test_task_service_lambda.snapshot.json`` (lambda:invoke:
   ``{"errorMessage":"Some exception was raised.","errorType":...``). lambda:invoke is unchanged.
2. A ``.$`` field of a payload template (Parameters, ResultSelector) whose JSONPath finds nothing
   ends the execution at once: ``States.Runtime``, cause "... The JSONPath '$.x' specified for the
   field 'y.$' could not be found in the input '...'", no ``TaskFailed`` event, no Retry, no Catch.
   AWS: "A States.Runtime error isn't retriable, and will always cause the execution to fail. A
   retry or catch on States.ALL won't catch States.Runtime errors."
   (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html); the cause
   is the one AWS's console shows (e.g. the Step Functions workshop's "Check Address" state:
   "The JSONPath '$.application.address' specified for the field 'address.$' could not be found in
   the input '{"flagged":false}'", the state drawn as cancelled, not failed). LocalStack 2026.3
   drops "specified for the field ..." for Task states, records a ``TaskFailed`` event and lets
   Retry/Catch act. Pass states (already right in LocalStack), Map and Parallel are left alone.

3. ``arn:aws:states:::lambda:invoke`` returns Invoke's whole answer as the SDK saw it:
   ``ExecutedVersion``, ``Payload``, ``SdkHttpMetadata`` (``AllHttpHeaders``, ``HttpHeaders``,
   ``HttpStatusCode``), ``SdkResponseMetadata`` (``RequestId``) and ``StatusCode``, in that order
   (AWS's example output in "Invoke an AWS Lambda function with Step Functions",
   https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html, and every recorded
   execution we found: the eight headers, the header order and the sorted ``HttpHeaders``).
   LocalStack keeps ``ExecutedVersion``, ``Payload`` and ``StatusCode`` only, so a workflow that
   passes the whole result on (no ``OutputPath``) gets different output.
4. A Distributed Map's tolerated failures: "If you specify both [ToleratedFailureCount and
   ToleratedFailurePercentage], the workflow fails when it exceeds either"; the percentage is
   failed plus timed-out items over all items; "Step Functions returns a
   States.ExceedToleratedFailureThreshold error when the Map Run fails because it exceeds the
   specified threshold"; "Step Functions may continue to run child workflows in a Map Run even
   after the tolerated failure threshold is exceeded, but before the Map Run fails"
   (https://docs.aws.amazon.com/step-functions/latest/dg/maprun-fail-threshold.html). Neither
   field set means none tolerated. LocalStack ignores both (a failed child gives ``null`` and the
   run SUCCEEDS). The cause text is ours: no AWS-recorded MapRunFailed cause could be found.
   A tolerated failure leaves no entry in the result array (the Map's output lists the children
   that succeeded).
   LocalStack's parser refuses an integer ``ToleratedFailurePercentage`` ("at 'x', no viable
   alternative"), which AWS takes ("a number ... from 0 through 100", same page): the text it
   parses has such a value written as ``N.0`` (what DescribeStateMachine returns is untouched).
5. ``ListExecutions(mapRunArn=...)`` lists the Map Run's child workflow executions (name,
   ``stateMachineArn`` ``<machine>/<label>``, status, dates, ``mapRunArn``, ``itemCount``;
   https://docs.aws.amazon.com/step-functions/latest/apireference/API_ListExecutions.html);
   LocalStack answers InternalError because its children are not executions.

6. CreateStateMachine and UpdateStateMachine refuse, with ``InvalidDefinition`` and AWS's
   message, what AWS refuses and LocalStack accepts (definitions.py: a Task ``Resource`` that is
   no ARN, or an ARN AWS does not recognise; a ``Next``/``Default`` naming no state), so boto3,
   awslocal and Terraform get AWS's answer, not only `scones import`. Then LocalStack's own
   checks, unchanged.

Each patch checks the source or behaviour of what it wraps and skips itself with a warning when
LocalStack has changed it (LocalStack core 2026.3.0 and 4.9.2 are what scones installs); all apply
through patching.py (LocalStack's ``Patch``).
"""

from __future__ import annotations

import email.utils
import functools
import importlib
import io
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from scones_emulator import patching

LOG = logging.getLogger(__name__)

SFN = "localstack.services.stepfunctions"
STATE_EXECUTION = f"{SFN}.asl.component.state.state_execution"
_PAYLOAD_TEXT = threading.local()  # the raw text of the last Lambda payload read on this thread
_INVOKE = threading.local()  # ResponseMetadata of the last Lambda Invoke made on this thread
MAP = f"{STATE_EXECUTION}.state_map"


_parameters = patching.parameters
_source_has = patching.source_has
Target = patching.Target


# ------------------------------ 1. direct Lambda ARN: the runtime's text ------------------


def install_runtime_error_text() -> bool:
    """Give ``LambdaFunctionFailed`` the function's error payload text as Lambda returned it.

    ``_invoke_lambda_function`` reads the payload through ``_from_payload`` (which parses it) on
    the thread that then raises ``LambdaFunctionErrorException`` with a compact re-serialization;
    the wrappers keep the text read on that thread and put it back for the direct-ARN task only.
    """
    try:
        utils = importlib.import_module(f"{STATE_EXECUTION}.state_task.lambda_eval_utils")
        lambda_task = importlib.import_module(f"{STATE_EXECUTION}.state_task.state_task_lambda")
        StateTaskLambda = lambda_task.StateTaskLambda
    except ImportError as err:
        LOG.warning(
            "fidelity: Step Functions Lambda modules moved (%s); runtime error text skipped", err
        )
        return False
    from_payload = utils._from_payload
    execute = utils.execute_lambda_function_integration
    from_error = StateTaskLambda.__dict__.get("_from_error")

    @functools.wraps(from_payload)
    def _from_payload(payload_streaming_body: Any) -> Any:
        raw: bytes = payload_streaming_body.read()
        try:
            _PAYLOAD_TEXT.text = raw.decode("utf-8")
        except UnicodeDecodeError:
            _PAYLOAD_TEXT.text = None
        return from_payload(io.BytesIO(raw))

    @functools.wraps(execute)
    def execute_lambda_function_integration(
        env: Any, parameters: dict, region: str, state_credentials: Any
    ) -> None:
        _PAYLOAD_TEXT.text = None  # a mocked response reads no payload
        try:
            execute(
                env=env, parameters=parameters, region=region, state_credentials=state_credentials
            )
        except utils.LambdaFunctionErrorException as err:
            err.runtime_text = _PAYLOAD_TEXT.text
            raise
        finally:
            _PAYLOAD_TEXT.text = None

    @functools.wraps(from_error)
    def _from_error(self: Any, env: Any, ex: Exception) -> Any:
        failure_event = from_error(self, env, ex)
        text = getattr(ex, "runtime_text", None)
        details = (failure_event.event_details or {}).get("lambdaFunctionFailedEventDetails")
        if text is not None and details and details.get("cause") == ex.payload:
            details["cause"] = text
        return failure_event

    return patching.guarded(
        [
            Target(utils, "_from_payload", _from_payload, ("payload_streaming_body",),
                   check=lambda _: _source_has(utils._invoke_lambda_function,
                                               "_from_payload(payload)"), pass_target=False),
            Target(utils, "execute_lambda_function_integration",
                   execute_lambda_function_integration,
                   ("env", "parameters", "region", "state_credentials"),
                   ("LambdaFunctionErrorException(function_error, payload_str)",),
                   pass_target=False),
            Target(StateTaskLambda, "_from_error", _from_error, ("self", "env", "ex"),
                   ("cause = ex.payload", "lambdaFunctionFailedEventDetails"), pass_target=False),
        ],
        label="fidelity: direct-ARN LambdaFunctionFailed (else LocalStack's compact cause)",
    )  # fmt: skip


# ------------------------------ 2. payload JSONPath: States.Runtime ------------------------


class _EndExecution(BaseException):
    """Carries a terminal failure past ExecutionState's Retry/Catch loop (it catches Exception)."""

    def __init__(self, failure: Exception):
        super().__init__(failure)
        self.failure = failure


@functools.cache
def _payload_path_error() -> type:
    """A ``NoSuchJsonPathError`` that knows its ``.$`` field (old handlers still match it)."""
    from localstack.services.stepfunctions.asl.utils.json_path import NoSuchJsonPathError

    class PayloadPathError(NoSuchJsonPathError):
        def __init__(self, json_path: str, data: Any, field: str):
            super().__init__(json_path=json_path, data=data)
            self.field = field

        @property
        def message(self) -> str:
            found = super().message  # "The JSONPath 'P' could not be found in the input 'I'"
            path = f"The JSONPath '{self.json_path}' "
            return found.replace(path, f"{path}specified for the field '{self.field}' ", 1)

    return PayloadPathError


def _failure(env: Any, error: str, event_type: str, details: dict) -> Exception:
    """A FailureEventException for a States.* ``error``, recorded as ``event_type`` with
    ``details`` (the event's details field, e.g. ``executionFailedEventDetails``)."""
    from localstack.aws.api.stepfunctions import HistoryEventType
    from localstack.services.stepfunctions.asl.component.common.error_name import (
        failure_event,
        states_error_name,
        states_error_name_type,
    )
    from localstack.services.stepfunctions.asl.eval.event.event_detail import EventDetails

    typ = getattr(states_error_name_type.StatesErrorNameType, error)
    field, values = next(iter(details.items()))
    return failure_event.FailureEventException(
        failure_event=failure_event.FailureEvent(
            env=env,
            error_name=states_error_name.StatesErrorName(typ=typ),
            event_type=getattr(HistoryEventType, event_type),
            event_details=EventDetails(**{field: {"error": typ.to_name(), **values}}),
        )
    )


def _runtime_failure(env: Any, err: Exception) -> Exception:
    """The FailureEventException that makes Program record ExecutionFailed, States.Runtime."""
    return _failure(env, "StatesRuntime", "ExecutionFailed",
                    {"executionFailedEventDetails": {"cause": str(err)}})  # fmt: skip


def install_payload_path_failure() -> bool:
    """End the execution on a payload-template JSONPath that finds nothing, as AWS does.

    ``PayloadBindingStringExpressionSimple`` (a ``"x.$": "$.path"`` entry) re-raises the path
    error with its field; ``ExecutionState._evaluate_with_timeout`` turns it into
    ``_EndExecution``, which passes the Retry/Catch loop of ``ExecutionState._eval_state``; the
    wrapped ``_eval_state`` re-raises the ``FailureEventException`` inside, which the program
    records as ExecutionFailed. Map and Parallel, which have their own loops, are unchanged.
    """
    try:
        Binding = importlib.import_module(
            f"{SFN}.asl.component.common.payload.payloadvalue.payloadbinding.payload_binding"
        ).PayloadBindingStringExpressionSimple
        ExecutionState = importlib.import_module(f"{STATE_EXECUTION}.execute_state").ExecutionState
        from localstack.services.stepfunctions.asl.utils.json_path import NoSuchJsonPathError

        path_error = _payload_path_error()
        expected_message = path_error("$.a", {"b": 1}, "x.$").message
    except (ImportError, TypeError, AttributeError) as err:
        LOG.warning("fidelity: Step Functions JSONPath modules changed (%s); skipped", err)
        return False
    eval_val = Binding.__dict__.get("_eval_val")
    evaluate = ExecutionState.__dict__.get("_evaluate_with_timeout")
    eval_state = ExecutionState.__dict__.get("_eval_state")
    binding_as_read = (
        expected_message
        == "The JSONPath '$.a' specified for the field 'x.$' could not be found in the input "
        """'{"b":1}'"""
        and Binding(field="x", string_expression_simple=None)._field_name() == "x.$"
    )

    @functools.wraps(eval_val)
    def _eval_val(self: Any, env: Any) -> Any:
        try:
            return eval_val(self, env)
        except path_error:
            raise
        except NoSuchJsonPathError as err:
            raise path_error(err.json_path, err.data, self._field_name()) from err

    @functools.wraps(evaluate)
    def _evaluate_with_timeout(self: Any, env: Any) -> None:
        try:
            evaluate(self, env)
        except path_error as err:
            if type(self)._eval_state is not _eval_state:  # Map, Parallel: their own loops
                raise
            raise _EndExecution(_runtime_failure(env, err)) from err

    @functools.wraps(eval_state)
    def _eval_state(self: Any, env: Any) -> None:
        try:
            eval_state(self, env)
        except _EndExecution as end:
            raise end.failure from end.__cause__

    return patching.guarded(
        [
            Target(Binding, "_eval_val", _eval_val, ("self", "env"),
                   check=lambda _: binding_as_read, pass_target=False),
            Target(ExecutionState, "_evaluate_with_timeout", _evaluate_with_timeout,
                   ("self", "env"), pass_target=False),
            Target(ExecutionState, "_eval_state", _eval_state, ("self", "env"),
                   ("self._evaluate_with_timeout(env)", "except Exception as ex:"),
                   pass_target=False),
        ],
        label="fidelity: payload JSONPath States.Runtime (else LocalStack's TaskFailed)",
    )  # fmt: skip


# ------------------------------ 3. lambda:invoke: the SDK's whole answer --------------------


INVOKE_ORDER = {k: i for i, k in enumerate(("ExecutedVersion", "Payload", "SdkHttpMetadata",
                                            "SdkResponseMetadata", "StatusCode"))}  # fmt: skip


def aws_invoke_result(result: dict, metadata: dict) -> dict:
    """Invoke's answer as Step Functions' lambda:invoke returns it on AWS (key order included)."""
    headers = {k.lower(): str(v) for k, v in (metadata.get("HTTPHeaders") or {}).items()}
    request_id = metadata.get("RequestId") or headers.get("x-amzn-requestid") or str(uuid.uuid4())
    version = result.get("ExecutedVersion") or headers.get("x-amz-executed-version") or "$LATEST"
    status = result.get("StatusCode", 200)
    length = headers.get("content-length") or str(
        len(json.dumps(result.get("Payload"), separators=(",", ":")).encode())
    )
    trace = headers.get("x-amzn-trace-id") or (
        f"root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
        f"parent={secrets.token_hex(8)};sampled=0"
    )
    every = {
        "X-Amz-Executed-Version": [version],
        "x-amzn-Remapped-Content-Length": ["0"],
        "Connection": ["keep-alive"],
        "x-amzn-RequestId": [request_id],
        "Content-Length": [length],
        "Date": [headers.get("date") or email.utils.formatdate(usegmt=True)],
        "X-Amzn-Trace-Id": [trace],
        "Content-Type": ["application/json"],
    }
    shaped = {
        "ExecutedVersion": version,
        "Payload": result.get("Payload"),
        "SdkHttpMetadata": {
            "AllHttpHeaders": every,
            "HttpHeaders": {k: v[0] for k, v in sorted(every.items(), key=lambda i: i[0].lower())},
            "HttpStatusCode": status,
        },
        "SdkResponseMetadata": {"RequestId": request_id},
        "StatusCode": status,
    }
    return shaped | {k: v for k, v in result.items() if k not in shaped}


def install_invoke_result_shape() -> bool:
    """Give lambda:invoke's result the SdkHttpMetadata and SdkResponseMetadata AWS returns.

    ``_invoke_lambda_function`` keeps the boto response's ResponseMetadata for this thread
    (``execute_lambda_function_integration`` drops it); ``StateTaskServiceLambda``'s
    ``_eval_service_task`` reshapes the result it left on the stack. A direct function ARN task
    (whose result is the payload alone) and mocked responses are untouched.
    """
    try:
        utils = importlib.import_module(f"{STATE_EXECUTION}.state_task.lambda_eval_utils")
        Service = importlib.import_module(
            f"{STATE_EXECUTION}.state_task.service.state_task_service_lambda"
        ).StateTaskServiceLambda
    except ImportError as err:
        LOG.warning("fidelity: Step Functions Lambda modules moved (%s); invoke shape skipped", err)
        return False
    invoke = utils._invoke_lambda_function
    evaluate = Service.__dict__.get("_eval_service_task")
    normalise = Service._normalise_response  # inherited: re-appends the members it knows

    @functools.wraps(invoke)
    def _invoke_lambda_function(parameters: dict, region: str, state_credentials: Any) -> Any:
        response = invoke(parameters=parameters, region=region, state_credentials=state_credentials)
        _INVOKE.metadata = response.get("ResponseMetadata") or {}
        return response

    @functools.wraps(evaluate)
    def _eval_service_task(
        self: Any,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict,
        state_credentials: Any,
    ) -> None:
        _INVOKE.metadata = None  # a mocked response invokes nothing
        try:
            evaluate(self, env, resource_runtime_part, normalised_parameters, state_credentials)
            metadata = _INVOKE.metadata
        finally:
            _INVOKE.metadata = None
        if metadata is not None and env.stack and isinstance(env.stack[-1], dict):
            env.stack.append(aws_invoke_result(env.stack.pop(), metadata))

    @functools.wraps(normalise)
    def _normalise_response(self: Any, response: Any, *args: Any, **kwargs: Any) -> None:
        normalise(self, response, *args, **kwargs)
        if isinstance(response, dict) and "SdkHttpMetadata" in response:
            ordered = sorted(response.items(), key=lambda i: INVOKE_ORDER.get(i[0], 99))
            response.clear()
            response.update(ordered)

    return patching.guarded(
        [
            Target(utils, "_invoke_lambda_function", _invoke_lambda_function,
                   ("parameters", "region", "state_credentials"),
                   ("lambda_client.invoke(**parameters)", "return invocation_response"),
                   pass_target=False),
            Target(Service, "_eval_service_task", _eval_service_task,
                   ("self", "env", "resource_runtime_part", "normalised_parameters",
                    "state_credentials"),
                   ("execute_lambda_function_integration(",),
                   check=lambda _: _source_has(utils.execute_lambda_function_integration,
                                               "env.stack.append(response)"),
                   pass_target=False),
            Target(Service, "_normalise_response", _normalise_response,
                   ("self", "response", "boto_service_name", "service_action_name"),
                   pass_target=False),
        ],
        label="fidelity: lambda:invoke result shape (else no SdkHttpMetadata)",
    )  # fmt: skip


# ------------------------------ 4. Distributed Map: tolerated failures ---------------------

TOLERANCE_EXCEEDED_CAUSE = "The specified tolerated failure threshold was exceeded"  # ours


@functools.cache
def _program_states() -> tuple[type, type, type]:
    from localstack.services.stepfunctions.asl.eval import program_state

    return program_state.ProgramEnded, program_state.ProgramStopped, program_state.ProgramTimedOut


def _child_status(env: Any) -> str:
    """How one child workflow execution of a Map Run ended, in ListExecutions' words."""
    ended, stopped, timed_out = _program_states()
    state = env.program_state()
    if isinstance(state, ended):
        return "SUCCEEDED"
    if isinstance(state, stopped):
        return "ABORTED"
    if isinstance(state, timed_out):
        return "TIMED_OUT"
    return "FAILED"  # ProgramError, or its input processing raised (LocalStack counts it failed)


def exceeds_tolerance(failed: int, total: int, count: int, percentage: float,
                      declared: tuple[bool, bool]) -> bool:  # fmt: skip
    """AWS's rule: over either declared threshold; none declared tolerates none."""
    count_set, percentage_set = declared
    if not (count_set or percentage_set):
        return failed > 0
    over_count = count_set and failed > count
    over_percentage = percentage_set and total > 0 and failed * 100.0 / total > percentage
    return over_count or over_percentage


def _tolerance_failure(env: Any) -> Exception:
    return _failure(env, "StatesExceedToleratedFailureThreshold", "MapRunFailed",
                    {"mapRunFailedEventDetails": {"cause": TOLERANCE_EXCEEDED_CAUSE}})  # fmt: skip


def install_map_tolerated_failures() -> bool:
    """Fail a Distributed Map's run past its tolerated failures; record its child executions.

    ``StateMap.from_state_props`` notes on the iteration component which thresholds the
    definition declares (LocalStack fills in 0 for both); each distributed worker's ``_eval_job``
    records its child (name, dates, status) on the MapRunRecord; ``_map_run`` then drops failed
    children's entries and raises ``States.ExceedToleratedFailureThreshold`` when over the
    threshold, which LocalStack's ``_eval_body`` records as MapRunFailed and the Map's
    Retry/Catch handle.
    """
    try:
        StateMap = importlib.import_module(f"{MAP}.state_map").StateMap
        tolerance = importlib.import_module(f"{MAP}.tolerated_failure")
        Distributed = importlib.import_module(
            f"{MAP}.iteration.distributed_iteration_component"
        ).DistributedIterationComponent
        workers = [
            importlib.import_module(
                f"{MAP}.iteration.itemprocessor.distributed_item_processor_worker"
            ).DistributedItemProcessorWorker,
            importlib.import_module(
                f"{MAP}.iteration.iterator.distributed_iterator_worker"
            ).DistributedIteratorWorker,
        ]
        _program_states()
    except (ImportError, AttributeError) as err:
        LOG.warning("fidelity: Step Functions Map modules moved (%s); tolerance skipped", err)
        return False
    from_props = StateMap.__dict__.get("from_state_props")
    map_run = Distributed.__dict__.get("_map_run")
    eval_jobs = [w.__dict__.get("_eval_job") for w in workers]

    @functools.wraps(from_props)
    def from_state_props(self: Any, state_props: Any) -> None:
        from_props(self, state_props)
        self.iteration_component.scones_tolerance = (
            state_props.get(tolerance.ToleratedFailureCountDecl) is not None,
            state_props.get(tolerance.ToleratedFailurePercentageDecl) is not None,
        )

    def wrap_job(eval_job: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(eval_job)
        def _eval_job(self: Any, env: Any, job: Any) -> None:
            record = self._map_run_record
            started = datetime.now(tz=UTC)
            eval_job(self, env, job)
            child = {"index": job.job_index, "name": str(uuid.uuid4()), "startDate": started,
                     "stopDate": datetime.now(tz=UTC), "status": _child_status(env)}  # fmt: skip
            with _CHILDREN_LOCK:
                record.__dict__.setdefault("scones_children", []).append(child)

        return _eval_job

    @functools.wraps(map_run)
    def _map_run(self: Any, env: Any, eval_input: Any) -> None:
        map_run(self, env, eval_input)
        record = eval_input.map_run_record
        children = getattr(record, "scones_children", [])
        failed_at = {c["index"] for c in children if c["status"] in ("FAILED", "TIMED_OUT")}
        if not failed_at:
            return
        outputs = env.stack.pop()
        if exceeds_tolerance(
            len(failed_at),
            len(outputs),
            record.tolerated_failure_count,  # UpdateMapRun changes these on the record
            record.tolerated_failure_percentage,
            getattr(self, "scones_tolerance", (False, False)),
        ):
            raise _tolerance_failure(env)
        env.stack.append([out for i, out in enumerate(outputs) if i not in failed_at])

    jobs = [
        Target(worker, "_eval_job", wrap_job(eval_job), ("self", "env", "job"),
               ("job.job_output = job_output", "_map_run_record"), pass_target=False)
        for worker, eval_job in zip(workers, eval_jobs, strict=True)
    ]  # fmt: skip
    return patching.guarded(
        [
            Target(StateMap, "from_state_props", from_state_props, ("self", "state_props"),
                   ("ToleratedFailureCountDecl", "self.iteration_component ="),
                   pass_target=False),
            Target(Distributed, "_map_run", _map_run, ("self", "env", "eval_input"),
                   ("env.stack.append(outputs)", "get_closed_jobs()"), pass_target=False),
            *jobs,
        ],
        label="fidelity: Distributed Map tolerated failures (else LocalStack's behaviour, and "
        "no ListExecutions(mapRunArn))",
    )  # fmt: skip


_CHILDREN_LOCK = threading.Lock()
# an integer ToleratedFailurePercentage (a key, not text inside a string: those quotes are escaped)
INTEGER_PERCENTAGE = re.compile(r'("ToleratedFailurePercentage"\s*:\s*)(\d+)(?=\s*[,}])')


def install_integer_tolerated_percentage() -> bool:
    """Let the ASL parser read ``"ToleratedFailurePercentage": 10`` as AWS does (as 10.0)."""
    try:
        Parser = importlib.import_module(f"{SFN}.asl.parse.asl_parser").AmazonStateLanguageParser
    except (ImportError, AttributeError) as err:
        LOG.warning("fidelity: the ASL parser moved (%s); integer percentages refused", err)
        return False

    def _parse(original: Callable[..., Any], definition: str) -> Any:
        return original(INTEGER_PERCENTAGE.sub(r"\g<1>\g<2>.0", definition))

    return patching.guarded(
        Parser, "parse", _parse, label="fidelity: integer ToleratedFailurePercentage",
        params=("definition",),
    )  # fmt: skip


# ------------------------------ 5. ListExecutions by mapRunArn ------------------------------


def install_list_map_run_executions() -> bool:
    """Answer ``ListExecutions(mapRunArn=...)`` from the children patch 4 records."""
    try:
        provider = importlib.import_module(f"{SFN}.provider")
        Provider = provider.StepFunctionsProvider
        from localstack.aws.api.stepfunctions import ResourceNotFound
    except (ImportError, AttributeError) as err:
        LOG.warning("fidelity: Step Functions provider moved (%s); ListExecutions skipped", err)
        return False
    list_executions = Provider.__dict__.get("list_executions")
    wanted = ("self", "context", "state_machine_arn", "status_filter", "max_results",
              "next_token", "map_run_arn", "redrive_filter", "kwargs")  # fmt: skip

    @functools.wraps(list_executions)
    def _list_executions(self: Any, context: Any, state_machine_arn: Any = None,
                         status_filter: Any = None, max_results: Any = None,
                         next_token: Any = None, map_run_arn: Any = None,
                         redrive_filter: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        if not map_run_arn or state_machine_arn:
            return list_executions(self, context, state_machine_arn, status_filter, max_results,
                                   next_token, map_run_arn, redrive_filter, **kwargs)  # fmt: skip
        record = None
        for execution in self.get_store(context).executions.values():
            pool = execution.exec_worker.env.map_run_record_pool_manager
            record = record or pool.get(map_run_arn)
        if record is None:
            raise ResourceNotFound(f"Map Run Does Not Exist: '{map_run_arn}'")
        machine = record.map_state_machine_arn
        items = [
            {"executionArn": f"{machine.replace(':stateMachine:', ':execution:')}:{c['name']}",
             "stateMachineArn": machine, "name": c["name"], "status": c["status"],
             "startDate": c["startDate"], "stopDate": c["stopDate"],
             "mapRunArn": map_run_arn, "itemCount": 1}
            for c in sorted(getattr(record, "scones_children", []),
                            key=lambda c: c["startDate"], reverse=True)
            if not status_filter or c["status"] == status_filter
        ]  # fmt: skip
        return {"executions": items}

    return patching.guarded(
        [Target(Provider, "list_executions", _list_executions, wanted,
                check=lambda _: _source_has(Provider.describe_map_run,
                                            "map_run_record_pool_manager.get(map_run_arn)"),
                pass_target=False)],
        label="fidelity: ListExecutions(mapRunArn)",
    )  # fmt: skip


# ------------------------------ 6. CreateStateMachine's checks ------------------------------


def _validate_like_aws(
    original: Callable[..., Any], definition: str, static_analysers: Any
) -> None:
    from localstack.aws.api.stepfunctions import InvalidDefinition

    from scones_emulator.definitions import _rejection, validate

    try:
        parsed = json.loads(definition)
    except (TypeError, ValueError):
        parsed = None  # LocalStack's parser says why, as before
    problems = validate(parsed) if isinstance(parsed, dict) else []
    if problems:  # AWS's words first: LocalStack refuses some of these in its own
        raise InvalidDefinition(_rejection(problems))
    original(definition, static_analysers)


def install_definition_checks() -> bool:
    """AWS's CreateStateMachine checks in ``_validate_definition`` (create, update, validate)."""
    try:
        Provider = importlib.import_module(f"{SFN}.provider").StepFunctionsProvider
    except (ImportError, AttributeError) as err:
        LOG.warning("fidelity: Step Functions provider moved (%s); definitions unchecked", err)
        return False
    return patching.guarded(
        Provider,
        "_validate_definition",
        _validate_like_aws,
        label="fidelity: CreateStateMachine checks",
        params=("definition", "static_analysers"),
        source=("static_analyser.analyse(definition)", "InvalidDefinition()"),
    )


def install() -> None:
    """Apply every fidelity patch whose target still looks as expected (idempotent)."""
    patches = (install_runtime_error_text, install_payload_path_failure,
               install_invoke_result_shape, install_map_tolerated_failures,
               install_integer_tolerated_percentage, install_list_map_run_executions,
               install_definition_checks)  # fmt: skip
    applied = [f.__name__ for f in patches if f()]
    LOG.debug("fidelity: applied %s", ", ".join(applied) or "nothing")
