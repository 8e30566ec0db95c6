"""A long-lived emulator forgets LocalStack's finished threads (threads.py).

Kept, each finished thread held its stack (two memory mappings under Python 3.13) until the
emulator stopped, and a busy emulator stopped starting threads after ~5,500 executions.
"""

import json
import time
import uuid
from pathlib import Path

from scones import stack
from tests.emulator.conftest import SFN_ROLE

EXECUTIONS = 300  # each starts at least one LocalStack worker thread


def _mappings(pid: int) -> int:
    return len(Path(f"/proc/{pid}/maps").read_text().splitlines())


def test_finished_execution_threads_do_not_pile_up(emulator, aws_client):
    component = next(c for c in stack.components() if c.name == "emulator")
    pid = stack._read_pid(component)
    assert pid, "the emulator's pid file names no running process"
    sfn = aws_client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"threads-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(
            {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
        ),
        roleArn=SFN_ROLE,
    )["stateMachineArn"]
    arns = [sfn.start_execution(stateMachineArn=machine)["executionArn"] for _ in range(3)]
    time.sleep(2)  # the first executions map what every later one reuses
    before = _mappings(pid)
    arns = [sfn.start_execution(stateMachineArn=machine)["executionArn"] for _ in range(EXECUTIONS)]
    deadline = time.monotonic() + 120
    for arn in arns:
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
            assert time.monotonic() < deadline, "executions of a Pass state still running"
            time.sleep(0.1)
    time.sleep(3)  # the reaper runs every second
    grown = _mappings(pid) - before
    # kept threads would add 2 per execution (600); reaped ones leave allocator noise only
    assert grown < EXECUTIONS // 2, f"{grown} new memory mappings after {EXECUTIONS} executions"
