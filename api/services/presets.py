"""The presets as clients are shown them: ready specs and ready studies, built once."""

from __future__ import annotations

from typing import Any

from core.experiment.presets import PRESETS
from core.experiment.study_presets import STUDY_PRESETS

PRESET_LIST: dict[str, list[dict[str, Any]]] = {
    "items": [
        {"name": p.name, "title": p.title, "description": p.description, "spec": p.spec}
        for p in PRESETS
    ],
    "studies": [
        {"name": p.name, "title": p.title, "description": p.description, "study": p.study}
        for p in STUDY_PRESETS
    ],
}
