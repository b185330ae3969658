"""Responses built the same way by the routes and by the hot read path (api.hot_reads)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from core.store.plots import png_etag
from core.store.records import JobRecord

# Content that never changes for its URL: a finished job's result and plots.
IMMUTABLE = "public, max-age=31536000, immutable"


class FastJSONResponse(Response):
    """JSON serialized by orjson, skipping FastAPI's encoder (the documents are plain already)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def record_response(record: JobRecord) -> Response:
    """A job's record as JSON."""
    return FastJSONResponse(record.to_public())


def stored_headers(etag: str, cache_control: str = IMMUTABLE) -> dict[str, str]:
    """Headers of a stored plot or file: it never changes for its URL, any page may embed it."""
    return {
        "ETag": etag,
        "Cache-Control": cache_control,
        # Lets pages that isolate themselves (COEP) embed the image too.
        "Cross-Origin-Resource-Policy": "cross-origin",
    }


def png_response(png: bytes, etag: str, cache_control: str = IMMUTABLE) -> Response:
    return Response(png, media_type="image/png", headers=stored_headers(etag, cache_control))


def not_modified(etag: str, cache_control: str = IMMUTABLE) -> Response:
    return Response(status_code=304, headers=stored_headers(etag, cache_control))


def etag_matches(header: str, etag: str) -> bool:
    """If-None-Match semantics: `*`, or any listed tag equal to `etag` (weak comparison)."""
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def stored_file_response(
    content: bytes,
    media_type: str,
    *,
    cache_control: str,
    if_none_match: str | None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A finished job's stored file (its result, its arrays): a strong ETag of its bytes,
    which never change for the URL, and 304 for a matching If-None-Match."""
    etag = png_etag(content)  # a hash of the bytes, whatever they hold
    if if_none_match is not None and etag_matches(if_none_match, etag):
        return not_modified(etag, cache_control)
    return Response(
        content,
        media_type=media_type,
        headers={**stored_headers(etag, cache_control), **(headers or {})},
    )
