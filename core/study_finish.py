"""What happens to a study when one of its children ends: update, seal, draw.

The worker calls `finish_study` after each child it ran, whatever the
child's outcome. Reading the study reconciles it with its children and
seals it when every child has finished (see core.study_store). The process
that then stores the study's series first (a `SET NX`) draws the default
plots, so two workers finishing the last children together do not both
draw; if that process dies first, the API draws each plot on its first
request instead, from the same numbers, to the same bytes.

Example:
    >>> record = finish_study(StudyStore.from_settings(get_settings()), study_id)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from core.jobs import JobStatus, dumps_compact
from core.keys import plot_field
from core.study_plots import available_study_plots, render_study_plot, study_series
from core.study_store import StudyRecord, StudyStore

logger = logging.getLogger(__name__)


def finish_study(store: StudyStore, study_id: str) -> StudyRecord | None:
    """Bring the study up to date; once complete, store its series and default PNGs."""
    record = store.get_study(study_id)
    if record is None or not record.status.finished:
        return record
    if store.get_study_series(study_id) is not None:
        return record  # another process has it, or had it (the plots follow the series)
    series = load_series(store, record)
    if not store.put_study_series(study_id, series_json=dumps_compact(series)):
        return record
    for name in available_study_plots(series):
        try:
            png = render_study_plot(name, series)
        except Exception:  # the numbers stand; the API can draw it on demand
            logger.exception("study %s: plot %s could not be drawn", study_id, name)
            continue
        store.put_study_plot(study_id, field=plot_field(name), png=png)
    return record


def load_series(store: StudyStore, record: StudyRecord) -> dict[str, Any]:
    """The study's plot series, read from its children's results one at a time."""
    return study_series(record.configs, record.seeds, _results(store, record))


def _results(store: StudyStore, record: StudyRecord) -> Iterator[Mapping[str, Any] | None]:
    for child in record.children:
        if child.status != JobStatus.SUCCEEDED.value:
            yield None
            continue
        stored = store.get_result(child.id)
        yield orjson.loads(stored.content) if stored.content else None
