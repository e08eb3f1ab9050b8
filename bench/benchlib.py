"""Helpers the benchmark and campaign scripts share."""

import socket


def free_port():
    """A TCP port nothing listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
