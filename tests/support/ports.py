"""A free loopback port, for a server a test starts on its own."""

from scones.stack import free_port as _product_free_port


def free_port() -> int:
    """A port nothing listens on, free to bind and refusing connections: the product's own
    choice, drawn below the kernel's ephemeral range so no other process's bind(0) takes it
    before the test's server binds it."""
    return _product_free_port("127.0.0.1")
