"""URLs the API hands out (share links, plot lists), never built from an unvetted Host.

A request's Host header is whatever the client wrote: a link built from it
would point wherever an attacker liked. Links are absolute from the configured
public URL; else from the request's Host when it is one of the configured
public hosts; else they are paths, which a client resolves against the URL it
called.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from core.settings import Settings


def public_url(request: Request, settings: Settings, route: str, **params: Any) -> str:
    """The URL of `route` with path `params`, for a client to keep or hand on."""
    path = request.scope.get("root_path", "") + request.app.url_path_for(route, **params)
    if settings.public_url is not None:
        return settings.public_url.rstrip("/") + path
    host = request.headers.get("host", "").lower()
    if host and host in settings.public_hosts:
        return f"{request.scope.get('scheme', 'http')}://{host}{path}"
    return path
