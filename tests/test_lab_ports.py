"""`imsim lab up` refuses ports someone listens on, but not a stack's TIME_WAIT leftovers."""

import socket

import pytest

from imsim.errors import UsageError
from lab.stack import check_free


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_listener_is_refused():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(UsageError, match="in use"):
            check_free(free_port(), port)


def test_time_wait_after_a_stack_stopped_is_not_in_use():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end waits in TIME_WAIT
    server.close()
    client.close()
    check_free(free_port(), port)
