"""A free loopback port, for a server a test starts on its own."""

import socket


def free_port() -> int:
    """A port nothing listens on (the OS's pick): free to bind, and refusing connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
