"""Request bodies that stop or trickle, over a raw socket: a 408 problem, the connection
freed, while a body sent at an ordinary pace is read as ever."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.conftest import Server, serve_api

SLOW = {
    "GRADWATCH_BODY_IDLE_SECONDS": "1",
    "GRADWATCH_BODY_GRACE_SECONDS": "1",
    "GRADWATCH_BODY_MIN_BYTES_PER_SECOND": "1000",
}
BODY = json.dumps({"seed": 1, "device": "gpu", "training": {"epochs": 2}}).encode()


@pytest.fixture(scope="module")
def server(service_env: dict[str, str]) -> Iterator[Server]:
    with serve_api({**service_env, **SLOW}) as running:
        yield running


def post_head(server: Server, length: int) -> socket.socket:
    address = urlsplit(server.url)
    sock = socket.create_connection((address.hostname, address.port), timeout=10)
    head = (
        f"POST /v1/experiments HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode())
    return sock


def answer(sock: socket.socket) -> tuple[int, dict[str, object]]:
    """The status and problem document of the response (read to the connection's close)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_body_that_stops_is_a_408(server: Server) -> None:
    with post_head(server, len(BODY)) as sock:
        sock.sendall(BODY[:10])
        status, problem = answer(sock)
    assert status == 408 and str(problem["type"]).endswith("body-too-slow")


def test_a_trickling_body_is_a_408(server: Server) -> None:
    padded = BODY + b" " * 4000
    with post_head(server, len(padded)) as sock:
        for offset in range(len(padded)):
            try:
                sock.sendall(padded[offset : offset + 1])
            except OSError:  # refused and closed mid-way
                break
            time.sleep(0.05)  # 20 bytes a second, far below 1,000
            sock.setblocking(False)
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break  # answered already
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
        status, problem = answer(sock)
    assert status == 408 and "bytes in" in str(problem["detail"])


def test_a_body_at_an_ordinary_pace_is_read(server: Server) -> None:
    with post_head(server, len(BODY)) as sock:
        for start in range(0, len(BODY), 16):
            sock.sendall(BODY[start : start + 16])
            time.sleep(0.01)
        sock.shutdown(socket.SHUT_WR)
        status, _ = answer(sock)
    assert status == 202
