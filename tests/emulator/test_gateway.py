"""The gateway: LocalStack's own Twisted server, listening on the configured host only.

LocalStack's Twisted server binds all interfaces whatever GATEWAY_LISTEN's host; our plugin
(gateway.py) gives each endpoint its host. A laptop's emulator must not be reachable from the
network it sits on, so the test reads the kernel's table of listening sockets.
"""

import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from scones import config

pytestmark = pytest.mark.integration

LISTEN = "0A"  # TCP state in /proc/net/tcp{,6}


def listening_addresses(port: int) -> list[str]:
    """Every local address (as the kernel shows it: hex) with a socket listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == LISTEN:
                found.append(address)
    return found


def test_the_gateway_listens_on_loopback_only(emulator, aws_client):
    url = urlsplit(emulator.url)
    assert url.hostname == "127.0.0.1"
    loopback = socket.inet_aton("127.0.0.1")[::-1].hex().upper()  # /proc: little-endian hex
    assert listening_addresses(url.port) == [loopback]  # not 00000000 (every interface)
    # and it serves there: a request through the patched server's endpoint
    assert aws_client("sts").get_caller_identity()["Account"]


# In the emulator's venv: LocalStack's Twisted server, with our patches, asked to shut down
# before it runs (a SIGTERM while the emulator still starts), then run as the runtime does.
STOP_BEFORE_SERVING = """
from localstack.runtime.server.twisted import TwistedRuntimeServer
from scones_emulator import gateway

assert gateway.install(), "a gateway patch was skipped"
server = TwistedRuntimeServer()
server.shutdown()
server.run()  # returns only once the reactor has stopped
print("stopped")
"""


def test_a_stop_that_comes_before_the_gateway_serves_ends_it(emulator):
    """LocalStack stopped the reactor straight away: ReactorNotRunning, and an emulator that
    ignored SIGTERM while starting (`scones down` had to kill it). The stop must wait for it.
    (`emulator` only makes sure the emulator's venv is installed.)"""
    python = config.EMULATOR_VENV / "bin" / "python"
    done = subprocess.run(
        [str(python), "-c", STOP_BEFORE_SERVING], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "stopped"
