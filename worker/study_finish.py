"""What happens to a study when one of its children ends: update, draw, seal.

The worker calls `finish_study` after each child it ran, whatever the
child's outcome. Reading the study reconciles it with its children. When
every child has finished, the first worker to claim the study reads the
children's results once, reduces them to the study's series, draws the
default plots and seals the study with its summary, series and PNGs in one
atomic step: a client that sees the study finished can fetch every default
plot at once, as for an experiment. A reader seals a complete study itself
(without plots, drawn later on request) when its last child finished more
than `SEAL_GRACE_SECONDS` ago: a worker that dies while drawing loses nothing.

Example:
    >>> record = finish_study(StudyStore.from_settings(get_settings()), study_id, by=host)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from core.experiment.jobs import JobStatus
from core.plotting.catalog import STUDY_PLOTS
from core.plotting.study.series import study_series
from core.store.records import StudyRecord, dumps_compact
from core.store.stores import StudyStore
from worker.drawing import draw_plots

logger = logging.getLogger(__name__)


def finish_study(store: StudyStore, study_id: str, *, by: str) -> StudyRecord | None:
    """Bring the study up to date; once complete, draw its plots and seal it (`by`: who)."""
    record = store.get_study(study_id, seal_after=None)
    if record is None or record.status.finished or not record.complete:
        return record
    if not store.claim_study_drawing(study_id, by=by):
        return record  # another worker draws it
    started = time.perf_counter()
    series = load_series(store, record)
    series_json = dumps_compact(series)
    read = time.perf_counter()
    plots = draw_default_plots(study_id, series, series_json)
    drawn = time.perf_counter()
    sealed = store.seal_study(study_id, series_json=series_json, plots=plots)
    logger.info(
        "study %s sealed: %d results read %.3f s, %d PNGs %.3f s, storing %.3f s",
        study_id, len(record.children), read - started, len(plots), drawn - read,
        time.perf_counter() - drawn,
    )  # fmt: skip
    return sealed


def draw_default_plots(
    study_id: str, series: Mapping[str, Any], series_json: str
) -> dict[str, bytes]:
    """Every plot the series supports, at the default size (a study is looked at as a
    whole, so none waits for its first request), here and in the drawing helper at
    once (worker.drawing); one that fails is left out."""
    names = STUDY_PLOTS.available(series)
    return draw_plots(STUDY_PLOTS, names, series, series_json, what=f"study {study_id}")


def load_series(store: StudyStore, record: StudyRecord) -> dict[str, Any]:
    """The study's plot series, read from its children's results one at a time."""
    return study_series(
        record.configs,
        record.seeds,
        _results(store, record),
        remedies=record.request.get("remedies"),
    )


def _results(store: StudyStore, record: StudyRecord) -> Iterator[Mapping[str, Any] | None]:
    for child in record.children:
        if child.status != JobStatus.SUCCEEDED.value:
            yield None
            continue
        stored = store.get_result(child.id)
        yield orjson.loads(stored.content) if stored.content else None
