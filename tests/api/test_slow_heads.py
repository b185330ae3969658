"""Request heads that never finish, trickle or grow without end, over raw sockets: a
408 or 431 problem and the connection closed, while ordinary requests, kept-alive
connections and bodies that outlast the head's deadline are served as ever."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Server, serve_api

TIMEOUT_SECONDS = 2
MAX_BYTES = 8192
HEADS = {
    "GRADWATCH_HEADER_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
    "GRADWATCH_HEADER_MAX_BYTES": str(MAX_BYTES),
}
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n"


@pytest.fixture(scope="module")
def server(service_env: dict[str, str]) -> Iterator[Server]:
    with serve_api({**service_env, **HEADS}) as running:
        yield running


def connect(server: Server) -> socket.socket:
    """A raw connection; a read waits up to 5 deadlines, so a missing one fails the test."""
    address = urlsplit(server.url)
    return socket.create_connection((address.hostname, address.port), timeout=5 * TIMEOUT_SECONDS)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response's status, headers and body (by its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = (line.partition(":") for line in lines)
    headers = {name.lower(): value.strip() for name, _, value in fields}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(status_line.split()[1]), headers, body


def refusal(sock: socket.socket) -> tuple[int, dict[str, object]]:
    """The status and problem document the server answered, then closed with."""
    status, headers, body = read_response(sock)
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/problem+json"
    try:
        after = sock.recv(1)
    except ConnectionResetError:  # closed as a byte of ours was on its way: reset, not ended
        after = b""
    assert after == b"", "the connection stayed open"
    return status, json.loads(body)


def answered(sock: socket.socket) -> bool:
    """Whether the server has written (or closed) without waiting for it."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
        return True
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)


def test_a_connection_that_sends_nothing_is_a_408_and_closed(server: Server) -> None:
    with connect(server) as sock:
        status, problem = refusal(sock)
    assert status == 408
    assert problem["type"] == "urn:gradwatch:problem:head-too-slow"
    assert f"within {TIMEOUT_SECONDS} s" in str(problem["detail"])


def test_a_head_trickled_a_byte_at_a_time_is_a_408(server: Server) -> None:
    head = HEALTHZ[:-2] + b"X-Pad: " + b"a" * 400 + b"\r\n\r\n"
    with connect(server) as sock:
        for byte in head[:-4]:  # never the blank line that ends it
            if answered(sock):
                break
            sock.sendall(bytes([byte]))
            time.sleep(0.02)
        status, problem = refusal(sock)
    assert status == 408 and problem["instance"] == "/healthz"


def test_a_head_over_the_byte_limit_is_a_431(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: api\r\n")
        for _ in range(MAX_BYTES // 1000 + 1):
            sock.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n")
        status, problem = refusal(sock)
    assert status == 431
    assert problem["type"] == "urn:gradwatch:problem:head-too-large"
    assert f"{MAX_BYTES:,} bytes" in str(problem["detail"])


def test_silent_connections_are_all_freed_while_others_are_served(server: Server) -> None:
    with ExitStack() as stack:
        silent = [stack.enter_context(connect(server)) for _ in range(200)]
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        assert [refusal(sock)[0] for sock in silent] == [408] * len(silent)


def test_each_request_on_a_kept_alive_connection_has_its_own_deadline(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(HEALTHZ)
        assert read_response(sock)[0] == 200
        # Idle under uvicorn's keep-alive timeout (5 s) until the connection is older
        # than a head's deadline, then a head sent over half of one: it is served.
        time.sleep(TIMEOUT_SECONDS * 0.75)
        for start in range(0, len(HEALTHZ), 4):
            sock.sendall(HEALTHZ[start : start + 4])
            time.sleep(TIMEOUT_SECONDS / 2 / (len(HEALTHZ) / 4))
        status, _, body = read_response(sock)
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_a_body_may_take_longer_than_the_head_deadline(server: Server) -> None:
    """The clock stops with the head: the body is under the body limits alone."""
    body = json.dumps({"seed": "not a number"}).encode() + b" " * 6000
    head = (
        "POST /v1/experiments HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    pieces = 8
    with connect(server) as sock:
        sock.sendall(head)
        for start in range(0, len(body), len(body) // pieces + 1):
            sock.sendall(body[start : start + len(body) // pieces + 1])
            time.sleep(TIMEOUT_SECONDS * 1.5 / pieces)
        status, _, answer = read_response(sock)
    assert status == 422, answer
    assert json.loads(answer)["errors"][0]["field"] == "seed"
