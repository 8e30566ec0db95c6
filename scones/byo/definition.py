"""A state machine definition: parse it, find the functions it calls and where it runs.

Whether AWS would accept it is the target's answer (``importer.check_definition`` asks
ValidateStateMachineDefinition; the emulator plugin's fidelity patch gives AWS's checks there).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

from scones.byo.errors import DefinitionRejected

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
STATES_INTEGRATION = re.compile(r"^arn:aws[a-zA-Z-]*:states:::(?P<rest>.+)$")


# ------------------------------ Definition: parse ------------------------------


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
        raise DefinitionRejected(rejection_message([message]), [message]) from err
    if not isinstance(definition, dict):
        message = "SCHEMA_VALIDATION_FAILED: Definition must be a valid JSON object"
        raise DefinitionRejected(rejection_message([message]), [message])
    return definition


def rejection_message(diagnostics: list[str]) -> str:
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
