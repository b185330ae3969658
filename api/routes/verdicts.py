"""Verdicts: what each diagnosis means, why it happens, where to read more, and its fixes."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from api.responses import FastJSONResponse
from api.schemas import VerdictList
from core.experiment.explanations import EXPLANATIONS
from core.experiment.prescriptions import RANKINGS

router = APIRouter(prefix="/verdicts", tags=["verdicts"])

_BODY = {
    "items": [
        {
            **item.to_json_dict(),
            "fixes": list(
                dict.fromkeys(remedy.fix.value for remedy in RANKINGS.get(item.verdict, ()))
            ),
        }
        for item in EXPLANATIONS
    ]
}


@router.get("", response_model=VerdictList)
async def list_verdicts() -> Response:
    """Every verdict a diagnosis can give, explained for people, with papers to read.

    A result carries the same explanation of each verdict it got
    (`diagnosis.explanations`), and its ranked fixes (`diagnosis.prescriptions`).
    """
    return FastJSONResponse(_BODY)
