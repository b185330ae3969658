"""Presets: the tutorial's experiments as ready specs."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from api.responses import FastJSONResponse
from api.schemas import PresetList
from core.presets import PRESETS

router = APIRouter(prefix="/presets", tags=["presets"])

_BODY = {
    "items": [
        {"name": p.name, "title": p.title, "description": p.description, "spec": p.spec}
        for p in PRESETS
    ]
}


@router.get("", response_model=PresetList)
async def list_presets() -> Response:
    """The tutorial's networks (and their Glorot-initialised fixes); POST any `spec` as it is."""
    return FastJSONResponse(_BODY)
