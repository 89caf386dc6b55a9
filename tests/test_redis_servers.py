"""The suite's own redis-servers survive a busy machine: a port taken between choosing and binding
it (by a parallel test, or an outgoing connection on a cluster node's bus port) is replaced on the
first start, and a restart keeps its port."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.redis_servers import RedisServer


def test_a_port_taken_before_the_first_start_is_replaced(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", server.port))
        squatter.listen(1)
        taken = server.port
        server.start()
        try:
            assert server.port != taken
            assert server.process is not None and server.process.poll() is None
        finally:
            server.stop()


def test_a_restart_keeps_its_port_and_says_why_it_failed(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r")
    server.start()
    port = server.port
    server.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen(1)
        with pytest.raises(RuntimeError, match="Address already in use"):
            server.start()
    assert server.port == port
