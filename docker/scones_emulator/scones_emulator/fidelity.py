"""Make LocalStack's Step Functions histories match AWS's where they differ (two monkeypatches).

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

Each patch checks the source or behaviour of what it wraps and skips itself with a warning when
LocalStack has changed it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import io
import logging
import threading
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger(__name__)

SFN = "localstack.services.stepfunctions"
STATE_EXECUTION = f"{SFN}.asl.component.state.state_execution"
_PAYLOAD_TEXT = threading.local()  # the raw text of the last Lambda payload read on this thread


def _parameters(function: Any) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return ()


def _source_has(function: Any, *fragments: str) -> bool:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return all(fragment in source for fragment in fragments)


def _patched(owner: Any, name: str, wrapper: Callable[..., Any], original: Any) -> None:
    wrapper.__scones_fidelity__ = True
    wrapper.__wrapped__ = original
    setattr(owner, name, wrapper)


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
    if all(getattr(f, "__scones_fidelity__", False) for f in (from_payload, execute, from_error)):
        return True
    if not (
        _parameters(from_payload) == ("payload_streaming_body",)
        and _source_has(utils._invoke_lambda_function, "_from_payload(payload)")
        and _parameters(execute) == ("env", "parameters", "region", "state_credentials")
        and _source_has(execute, "LambdaFunctionErrorException(function_error, payload_str)")
        and _parameters(from_error) == ("self", "env", "ex")
        and _source_has(from_error, "cause = ex.payload", "lambdaFunctionFailedEventDetails")
    ):
        LOG.warning(
            "fidelity: the Lambda integration is not LocalStack 2026.3's; direct-ARN "
            "LambdaFunctionFailed keeps LocalStack's compact cause"
        )
        return False

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

    _patched(utils, "_from_payload", _from_payload, from_payload)
    _patched(utils, "execute_lambda_function_integration", execute_lambda_function_integration,
             execute)  # fmt: skip
    _patched(StateTaskLambda, "_from_error", _from_error, from_error)
    return True


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


def _runtime_failure(env: Any, err: Exception) -> Exception:
    """The FailureEventException that makes Program record ExecutionFailed, States.Runtime."""
    from localstack.aws.api.stepfunctions import ExecutionFailedEventDetails, HistoryEventType
    from localstack.services.stepfunctions.asl.component.common.error_name import (
        failure_event,
        states_error_name,
        states_error_name_type,
    )
    from localstack.services.stepfunctions.asl.eval.event.event_detail import EventDetails

    runtime = states_error_name_type.StatesErrorNameType.StatesRuntime
    details = ExecutionFailedEventDetails(error=runtime.to_name(), cause=str(err))
    return failure_event.FailureEventException(
        failure_event=failure_event.FailureEvent(
            env=env,
            error_name=states_error_name.StatesErrorName(typ=runtime),
            event_type=HistoryEventType.ExecutionFailed,
            event_details=EventDetails(executionFailedEventDetails=details),
        )
    )


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
    if all(getattr(f, "__scones_fidelity__", False) for f in (eval_val, evaluate, eval_state)):
        return True
    if not (
        expected_message
        == "The JSONPath '$.a' specified for the field 'x.$' could not be found in the input "
        """'{"b":1}'"""
        and _parameters(eval_val) == ("self", "env")
        and Binding(field="x", string_expression_simple=None)._field_name() == "x.$"
        and _parameters(evaluate) == ("self", "env")
        and _parameters(eval_state) == ("self", "env")
        and _source_has(eval_state, "self._evaluate_with_timeout(env)", "except Exception as ex:")
    ):
        LOG.warning(
            "fidelity: ExecutionState or payload bindings are not LocalStack 2026.3's; a missing "
            "payload JSONPath keeps LocalStack's TaskFailed"
        )
        return False

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

    _patched(Binding, "_eval_val", _eval_val, eval_val)
    _patched(ExecutionState, "_evaluate_with_timeout", _evaluate_with_timeout, evaluate)
    _patched(ExecutionState, "_eval_state", _eval_state, eval_state)
    return True


def install() -> None:
    """Apply every fidelity patch whose target still looks as expected (idempotent)."""
    applied = [
        f.__name__ for f in (install_runtime_error_text, install_payload_path_failure) if f()
    ]
    LOG.debug("fidelity: applied %s", ", ".join(applied) or "nothing")
