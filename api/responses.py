"""Response classes for routes that build their documents themselves."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

# Content that never changes for its URL: a finished job's result and plots.
IMMUTABLE = "public, max-age=31536000, immutable"


class FastJSONResponse(Response):
    """JSON serialized by orjson, skipping FastAPI's encoder (the documents are plain already)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
