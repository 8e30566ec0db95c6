"""LocalStack's default gateway server (Twisted), listening only where GATEWAY_LISTEN says.

LocalStack's Twisted server binds every IPv4 listen address on all interfaces (0.0.0.0; its
source carries "TODO: interface = host?"), so the stack used to run hypercorn, which honours the
host. But a request through hypercorn costs the emulator about twice the CPU: an asyncio loop,
the ASGI-to-WSGI bridge and a thread started for each new connection (2026-12-06, one API call
in a loop: 4.5-5.5 ms of emulator CPU per call through hypercorn, 2.3 ms through Twisted). Every
execution makes several such calls (the upload, the serialize Lambda's GetObject, the client's
polling), so this patch keeps LocalStack's own server and gives each endpoint its host.

A second patch makes the server's ``shutdown`` work before the server runs. LocalStack calls
``reactor.stop()`` from its shutdown thread, which raises ReactorNotRunning when the SIGTERM
comes while the emulator still starts (`scones up` giving up on a slow start, `scones down`
right after `up`): the shutdown thread died, start-up went on to "Ready." and the emulator
ignored the signal until it was killed (no state saved). The stop now goes through
``reactor.callFromThread``, Twisted's thread-safe way in: it runs as soon as the reactor does.

Always applied, speedups on or off: it is where and how the emulator serves, not how fast.
Should LocalStack change either method, its guard leaves it alone and logs a warning; the
tests check that the gateway listens on loopback only and that a stop before serving ends it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from typing import Any

from scones_emulator import patching

LOG = logging.getLogger(__name__)


def _register_on_listen_host(
    self: Any, gateway: Any, listen: list[Any], ssl_creds: tuple[str, str] | None = None
) -> None:
    """LocalStack's ``TwistedRuntimeServer.register``, with each endpoint on its listen host."""
    from localstack import config
    from localstack.aws.serving.twisted import TLSMultiplexerFactory
    from rolo.serving.twisted import TwistedGateway
    from twisted.internet import endpoints, reactor, ssl

    site = TwistedGateway(gateway)
    factory = site
    if ssl_creds:  # the gateway answers TLS and plain HTTP on the same port, as LocalStack's
        cert_file, key_file = ssl_creds
        context = ssl.DefaultOpenSSLContextFactory(key_file, cert_file)
        context.getContext().use_certificate_chain_file(cert_file)
        factory = TLSMultiplexerFactory(context, False, site)
    for where in listen:
        if config.is_ipv6_address(where.host):
            endpoint = endpoints.TCP6ServerEndpoint(reactor, where.port, interface=where.host)
        else:
            endpoint = endpoints.TCP4ServerEndpoint(reactor, where.port, interface=where.host)
        endpoint.listen(factory)


def _shutdown_from_any_thread(self: Any) -> None:
    """LocalStack's ``TwistedRuntimeServer.shutdown``, also before the reactor runs."""
    from twisted.internet import reactor

    if self.thread_pool:
        self.thread_pool.stop(timeout=10)
    reactor.callFromThread(_stop_reactor, reactor)  # queued until run() if not running yet


def _stop_reactor(reactor: Any) -> None:
    from twisted.internet.error import ReactorNotRunning

    with contextlib.suppress(ReactorNotRunning):  # another stop came first
        reactor.stop()


def install() -> bool:
    """Make LocalStack's Twisted server listen on GATEWAY_LISTEN's hosts and stop at any time
    (idempotent). True if both patches are in place."""
    try:
        server = importlib.import_module("localstack.runtime.server.twisted")
    except ImportError as err:  # Twisted missing: GATEWAY_SERVER=twisted fails at start anyway
        LOG.warning("gateway: %s; the Twisted server cannot be bound to its host", err)
        return False
    bound = patching.guarded(
        server.TwistedRuntimeServer,
        "register",
        _register_on_listen_host,
        label="gateway: Twisted listens on GATEWAY_LISTEN's host",
        params=("self", "gateway", "listen", "ssl_creds"),
        source=(
            "site = TwistedGateway(gateway)",
            "TLSMultiplexerFactory(context_factory, False, site)",
            "endpoints.TCP4ServerEndpoint(reactor, host_and_port.port)",
            "endpoint.listen(protocol_factory)",
        ),
        pass_target=False,
    )
    stoppable = patching.guarded(
        server.TwistedRuntimeServer,
        "shutdown",
        _shutdown_from_any_thread,
        label="gateway: a stop before the Twisted server runs ends it",
        params=("self",),
        source=("self.thread_pool.stop(timeout=10)", "reactor.stop()"),
        pass_target=False,
    )
    return bound and stoppable
