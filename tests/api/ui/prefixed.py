"""The API as a proxy presents it under a path prefix: `uvicorn tests.api.ui.prefixed:app`.

A proxy that forwards /lab/gradwatch/... to the API (as nginx's `location /lab/gradwatch/`
with uvicorn's --root-path does) hands the app the full path and the prefix as root_path;
anything outside the prefix is not the API's.
"""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from api.main import create_app

PREFIX = "/lab/gradwatch"
api = create_app()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        if not scope["path"].startswith(f"{PREFIX}/"):
            await PlainTextResponse("outside the prefix", status_code=404)(scope, receive, send)
            return
        scope = {**scope, "root_path": PREFIX}
    await api(scope, receive, send)
