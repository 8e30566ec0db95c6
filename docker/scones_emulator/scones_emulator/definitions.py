"""AWS's CreateStateMachine checks that LocalStack skips: a definition AWS refuses is refused here.

The one home of these checks: `scones import` asks the emulator (ValidateStateMachineDefinition)
rather than checking on its own. Messages are AWS's, e.g.
``Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: Value is not a valid resource
ARN at /States/Classify/Resource'`` with the error code ``InvalidDefinition``.
"""

from __future__ import annotations

import re

# arn:partition:lambda:region:account:function:name[:qualifier] (the Lambda API's own pattern)
LAMBDA_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d):"
    r"(?P<account>\d{12}):function:(?P<name>[a-zA-Z0-9_-]{1,64})"
    r"(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]{1,128}))?$"
)
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
