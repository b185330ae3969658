"""Error responses of the real app: CORS headers on a 500, Redis replies mapped by meaning.

The app is built as a server builds it, with routes added that fail as a bug or a
refusing Redis would, and called through httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import redis
from fastapi import FastAPI
from starlette.responses import StreamingResponse

from api.main import create_app
from core.access.api_keys import key_entry, new_api_key
from core.settings import Settings
from tests.api.conftest import problem
from tests.api.test_blowups import INTERNALS

ORIGIN = "https://notebook.example"
SECRET = "password=hunter2 at /work/main/core/store/jobs.py:42"


def failing_app(settings: Settings) -> FastAPI:
    """The real app with routes that fail: a bug, Redis replies, and a stream cut short."""
    app = create_app(settings)

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET)

    @app.get("/v1/redis-reply")
    async def redis_reply(reply: str) -> None:
        raise redis.ResponseError(reply)

    @app.get("/v1/stream-cut")
    async def stream_cut() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            raise RuntimeError(SECRET)

        return StreamingResponse(chunks(), media_type="text/plain")

    return app


def call(
    settings: Settings, send: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
) -> httpx.Response:
    """What the app answers to `send`, from start to shutdown as a server runs it."""
    app = failing_app(settings)

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            return await send(client)

    return asyncio.run(run())


def keys_settings(settings: Settings, **extra: object) -> Settings:
    """`settings` with an API key and a share secret (keys mode), and `extra`."""
    values = settings.model_dump()
    values.update(api_keys=(key_entry(new_api_key(), "alice"),), share_secret="s" * 32, **extra)
    return Settings.model_validate(values)


def assert_generic_500(response: httpx.Response, path: str) -> None:
    body = problem(response, 500)
    assert body == {
        "type": "urn:gradwatch:problem:internal",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "the error was logged",
        "instance": path,
    }
    text = response.text + str(response.headers)
    assert "hunter2" not in text and not any(internal in text for internal in INTERNALS)


def test_a_500_carries_the_cors_headers_of_any_other_response(settings: Settings) -> None:
    response = call(settings, lambda http: http.get("/v1/boom", headers={"Origin": ORIGIN}))

    assert_generic_500(response, "/v1/boom")
    assert response.headers["access-control-allow-origin"] == "*"
    assert "ETag" in response.headers["access-control-expose-headers"]


def test_a_500_follows_the_configured_origins(settings: Settings) -> None:
    allowing = keys_settings(settings, cors_origins=[ORIGIN])

    allowed = call(allowing, lambda http: http.get("/v1/boom", headers={"Origin": ORIGIN}))
    other = call(
        allowing, lambda http: http.get("/v1/boom", headers={"Origin": "https://elsewhere.example"})
    )
    closed = call(
        keys_settings(settings), lambda http: http.get("/v1/boom", headers={"Origin": ORIGIN})
    )

    assert_generic_500(allowed, "/v1/boom")
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "origin" in allowed.headers["vary"].lower()
    for response in (other, closed):
        assert_generic_500(response, "/v1/boom")
        assert "access-control-allow-origin" not in response.headers


def test_a_500_is_logged_once_with_its_traceback(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        call(settings, lambda http: http.get("/v1/boom"))

    logged = [record for record in caplog.records if record.name == "api.errors"]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert SECRET in str(logged[0].exc_info[1])


def test_an_error_after_the_response_started_ends_it_without_a_second_one(
    settings: Settings,
) -> None:
    response = call(settings, lambda http: http.get("/v1/stream-cut"))

    assert response.status_code == 200  # what was sent stands; the server drops the rest
    assert response.content == b"first"


@pytest.mark.parametrize(
    "reply",
    [
        "LOADING Redis is loading the dataset in memory",
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
        "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist",
        "READONLY You can't write against a read only replica.",
        "OOM command not allowed when used memory > 'maxmemory'.",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "TRYAGAIN Multiple keys request during rehashing of slot",
    ],
)
def test_a_reply_meaning_not_now_is_a_503_with_cors(settings: Settings, reply: str) -> None:
    response = call(
        settings,
        lambda http: http.get(
            "/v1/redis-reply", params={"reply": reply}, headers={"Origin": ORIGIN}
        ),
    )

    body = problem(response, 503)
    assert body["type"] == "urn:gradwatch:problem:store-unavailable"
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["access-control-allow-origin"] == "*"
    assert reply not in response.text


@pytest.mark.parametrize(
    "reply",
    [
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "BUSYGROUP Consumer Group name already exists",
        "ERR Error running script (call to f_0123): @user_script:7: bad argument",
    ],
)
def test_any_other_reply_is_a_generic_500(settings: Settings, reply: str) -> None:
    response = call(settings, lambda http: http.get("/v1/redis-reply", params={"reply": reply}))

    assert_generic_500(response, "/v1/redis-reply")
