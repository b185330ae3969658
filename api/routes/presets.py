"""Presets: the tutorial's experiments as ready specs, and its comparisons as ready studies."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from api.responses import FastJSONResponse
from api.schemas import PresetList
from api.services.presets import PRESET_LIST

router = APIRouter(prefix="/presets", tags=["presets"])


@router.get("", response_model=PresetList)
async def list_presets() -> Response:
    """The tutorial's networks and its comparisons, ready to POST.

    POST an item's `spec` to /v1/experiments as it is; a study's `study` to
    /v1/studies, or just `{"preset": name}`.
    """
    return FastJSONResponse(PRESET_LIST)
