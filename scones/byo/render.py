"""An execution told the way the console's Graph and Table views tell it."""

from __future__ import annotations

import json
import re
from datetime import datetime

from scones.byo.execute import Execution

SHORTEN_OVER = 80  # characters: longer base64 strings are shown as their start plus a length
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
