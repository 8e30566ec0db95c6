"""The Lambda Runtime API (2018-06-01) that one awslambdaric process polls, served on 127.0.0.1.

Contract: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
One server per runtime process keeps a killed process's stale long-poll from ever taking the
next event: the whole server goes away with its process.

HTTP/1.1 is parsed by h11 (the parser hypercorn, and so LocalStack, already uses): the standard
library's ``http.server`` parses each request's headers with the ``email`` package, which was
5 % of the emulator's GIL time in a busy workflow (six requests per execution: a /next and a
/response for each of three Lambda invokes).
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import socketserver
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import NamedTuple

import h11

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


class Answer(NamedTuple):
    """What the server sends back for one request."""

    status: HTTPStatus
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    delivered: PendingInvoke | None = None  # a /next's event, marked delivered once sent
    close: bool = False  # the server is closing: end the connection after this answer


class _Server(socketserver.ThreadingTCPServer):
    """One thread per connection (the runtime keeps one open); a runtime killed mid-request
    (timeout, stop) breaks its connection: not worth a traceback."""

    daemon_threads = True
    allow_reuse_address = True

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
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
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

    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """The answer to one request (header names lower-case); a GET /next blocks for its
        event."""
        if method == "GET":
            if path != NEXT_PATH:
                return Answer(HTTPStatus.NOT_FOUND, b'{"errorType":"NotFound"}')
            event = self._next_event()
            if event is None:  # server closing: the process is being killed anyway
                return Answer(HTTPStatus.GONE, b'{"errorType":"Runtime.Shutdown"}', close=True)
            # awslambdaric's C client crashes when any of these headers is missing,
            # so the optional ones go out empty rather than absent.
            invocation = {
                "Lambda-Runtime-Aws-Request-Id": event.request_id,
                "Lambda-Runtime-Deadline-Ms": str(event.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": event.function_arn,
                "Lambda-Runtime-Trace-Id": event.trace_id,
                "Lambda-Runtime-Client-Context": "",
                "Lambda-Runtime-Cognito-Identity": "",
            }
            return Answer(HTTPStatus.OK, event.payload, tuple(invocation.items()), delivered=event)
        parts = path.removeprefix(API_PREFIX + "/").split("/")
        error_type = headers.get(ERROR_TYPE_HEADER.lower())
        if method != "POST":
            status = HTTPStatus.METHOD_NOT_ALLOWED
        elif path == INIT_ERROR_PATH:
            self._post_init_error(body or _error_body(error_type))
            status = HTTPStatus.ACCEPTED
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] == "response":
            status = self._answer(parts[1], body, is_error=False)
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] == "error":
            status = self._answer(parts[1], body or _error_body(error_type), is_error=True)
        else:
            status = HTTPStatus.NOT_FOUND
        return Answer(status, b'{"status":"OK"}' if status < 300 else b'{"status":"ERROR"}')

    def _handler_class(self) -> type[socketserver.BaseRequestHandler]:
        api = self

        class Handler(socketserver.BaseRequestHandler):
            """The requests of one keep-alive connection, one after another."""

            def handle(self) -> None:
                sock = self.request
                # the runtime's next request must not wait for a delayed ACK (with Nagle on,
                # every event took 40-250 ms longer)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn = h11.Connection(h11.SERVER)
                while True:
                    try:
                        received = _read_request(conn, sock)
                    except h11.RemoteProtocolError as err:
                        LOG.debug("runtime api %s: bad request: %s", api.port, err)
                        return
                    if received is None:  # the runtime closed its connection
                        return
                    request, body = received
                    method, path = request.method.decode(), request.target.decode()
                    headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
                    answer = api.route(method, path, headers, body)
                    sent = [*answer.headers, ("Content-Type", "application/json"),
                            ("Content-Length", str(len(answer.body)))]  # fmt: skip
                    if answer.close:
                        sent.append(("Connection", "close"))
                    sock.sendall(  # headers and body in one write
                        conn.send(h11.Response(status_code=int(answer.status), headers=sent))
                        + conn.send(h11.Data(data=answer.body))
                        + conn.send(h11.EndOfMessage())
                    )
                    if answer.delivered is not None:
                        answer.delivered.delivered.set()
                    LOG.debug("runtime api %s: %s %s %d", api.port, method, path, answer.status)
                    if answer.close or conn.our_state is not h11.DONE:
                        return
                    conn.start_next_cycle()

        return Handler


def _read_request(conn: h11.Connection, sock: socket.socket) -> tuple | None:
    """The next whole request on ``conn`` (h11.Request, body), or None once the peer closed."""
    request, body = None, bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))  # b"" at EOF: h11 then says ConnectionClosed
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


def _error_body(error_type: str | None) -> bytes:
    """AWS fills in an error body from the error-type header when the runtime sends none."""
    return json.dumps({"errorType": error_type or "Runtime.Unknown", "errorMessage": ""}).encode()
