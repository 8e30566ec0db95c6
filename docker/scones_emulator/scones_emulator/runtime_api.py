"""The Lambda Runtime API (2018-06-01) that one awslambdaric process polls, served on 127.0.0.1.

Contract: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
One server per runtime process keeps a killed process's stale long-poll from ever taking the
next event: the whole server goes away with its process.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = logging.getLogger(__name__)

API_PREFIX = "/2018-06-01/runtime"
NEXT_PATH = f"{API_PREFIX}/invocation/next"
INIT_ERROR_PATH = f"{API_PREFIX}/init/error"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
# How often an idle server's accept loop wakes to see whether it was shut down. close() runs
# the shutdown in its own thread, so this only bounds how long a closed server's thread lingers;
# a short one cost every idle environment wake-ups (and the emulator's GIL) all the time.
SERVE_POLL_S = 5.0
_CLOSED = None  # put on the event queue by close(): wakes a /next waiting for an event


@dataclass
class PendingInvoke:
    """One event on its way to the runtime; ``result`` gets (payload, is_error)."""

    request_id: str
    payload: bytes
    function_arn: str
    deadline_ms: int
    trace_id: str
    result: Future = field(default_factory=Future)
    delivered: threading.Event = field(default_factory=threading.Event)

    def resolve(self, payload: bytes, is_error: bool) -> bool:
        """Set the result once; later answers (e.g. after a kill) are ignored."""
        if self.result.done():
            return False
        try:
            self.result.set_result((payload, is_error))
        except Exception:  # InvalidStateError when two threads race; the first one wins
            return False
        return True


class _QuietServer(ThreadingHTTPServer):
    """A runtime killed mid-request (timeout, stop) breaks its connection: not worth a traceback."""

    def handle_error(self, request: object, client_address: tuple) -> None:
        LOG.debug("runtime api connection from %s ended abruptly", client_address, exc_info=True)


class RuntimeApiServer:
    """Runtime API endpoints for one runtime process; events go in with :meth:`submit`."""

    def __init__(self) -> None:
        self.ready = threading.Event()  # set on the first GET /next: init finished
        self.settled = threading.Event()  # set on /next or init/error: start() may look
        self.init_error: bytes | None = None
        self._events: queue.Queue[PendingInvoke | None] = queue.Queue()
        self._current: PendingInvoke | None = None
        self._closed = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": SERVE_POLL_S},
            name=f"scones-runtime-api-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def address(self) -> str:
        """Value for AWS_LAMBDA_RUNTIME_API (host:port, no scheme)."""
        return f"127.0.0.1:{self.port}"

    def submit(self, invoke: PendingInvoke) -> None:
        self._current = invoke
        self._events.put(invoke)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._events.put(_CLOSED)
        # shutdown() blocks until serve_forever's next poll (up to SERVE_POLL_S): not our caller
        threading.Thread(
            target=self._shutdown, name=f"{self._thread.name}-close", daemon=True
        ).start()

    def _shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------ request handling ------------------------------
    def _next_event(self) -> PendingInvoke | None:
        self.ready.set()
        self.settled.set()
        if self._closed.is_set():
            return None
        event = self._events.get()  # blocks without polling: close() puts _CLOSED
        if event is _CLOSED:
            self._events.put(_CLOSED)  # for any other /next still waiting
        return event

    def _answer(self, request_id: str, body: bytes, is_error: bool) -> HTTPStatus:
        current = self._current
        if current is None or current.request_id != request_id:
            return HTTPStatus.BAD_REQUEST  # AWS: InvalidRequestID
        current.resolve(body, is_error)
        return HTTPStatus.ACCEPTED

    def _post_init_error(self, body: bytes) -> None:
        self.init_error = body
        self.settled.set()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.1 so the runtime's curl client can keep its connection between calls
            protocol_version = "HTTP/1.1"
            # headers and body go out as two writes; with Nagle on, the body waits for the
            # client's delayed ACK and every event took 40-250 ms longer
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                LOG.debug("runtime api %s: " + format, api.port, *args)

            def _send(self, status: HTTPStatus, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def do_GET(self) -> None:  # noqa: N802
                if self.path != NEXT_PATH:
                    self._send(HTTPStatus.NOT_FOUND, b'{"errorType":"NotFound"}')
                    return
                event = api._next_event()
                if event is None:  # server closing: the process is being killed anyway
                    self._send(HTTPStatus.GONE, b'{"errorType":"Runtime.Shutdown"}')
                    self.close_connection = True
                    return
                # awslambdaric's C client crashes when any of these headers is missing,
                # so the optional ones go out empty rather than absent.
                headers = {
                    "Lambda-Runtime-Aws-Request-Id": event.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(event.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": event.function_arn,
                    "Lambda-Runtime-Trace-Id": event.trace_id,
                    "Lambda-Runtime-Client-Context": "",
                    "Lambda-Runtime-Cognito-Identity": "",
                }
                self._send(HTTPStatus.OK, event.payload, headers)
                event.delivered.set()

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                parts = self.path.removeprefix(API_PREFIX + "/").split("/")
                if self.path == INIT_ERROR_PATH:
                    api._post_init_error(body or _error_body(self.headers.get(ERROR_TYPE_HEADER)))
                    status = HTTPStatus.ACCEPTED
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] == "response":
                    status = api._answer(parts[1], body, is_error=False)
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] == "error":
                    error = body or _error_body(self.headers.get(ERROR_TYPE_HEADER))
                    status = api._answer(parts[1], error, is_error=True)
                else:
                    status = HTTPStatus.NOT_FOUND
                self._send(status, b'{"status":"OK"}' if status < 300 else b'{"status":"ERROR"}')

        return Handler


def _error_body(error_type: str | None) -> bytes:
    """AWS fills in an error body from the error-type header when the runtime sends none."""
    return json.dumps({"errorType": error_type or "Runtime.Unknown", "errorMessage": ""}).encode()
