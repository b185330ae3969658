"""The client's typed documents (core.client.records) mirror the API's schemas by hand:
core.client may not import the API. Each field a script reads must be one the service
answers with; a document mirrored whole (not only the fields a script reads) must leave
none out, such as the count of a study's `missing` children."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from api import schemas
from core.client import records

# The client's document, the API's schema, and whether the one mirrors the other whole.
MIRRORS: list[tuple[type, type[BaseModel], bool]] = [
    (records.Progress, schemas.JobProgress, True),
    (records.Summary, schemas.JobSummary, True),
    (records.Job, schemas.JobPublic, False),
    (records.StudyProgress, schemas.StudyProgress, True),
    (records.Study, schemas.StudyPublic, False),
    (records.Dataset, schemas.DatasetPublic, True),
    (records.PlotLink, schemas.PlotLink, True),
    (records.Page, schemas.JobsPage, True),
]


@pytest.mark.parametrize(
    ("document", "schema", "whole"), MIRRORS, ids=[mirror[0].__name__ for mirror in MIRRORS]
)
def test_every_field_the_client_reads_is_one_the_api_sends(
    document: type, schema: type[BaseModel], whole: bool
) -> None:
    fields = document.__required_keys__ | document.__optional_keys__  # type: ignore[attr-defined]
    unknown = fields - set(schema.model_fields)
    assert not unknown, f"{document.__name__} reads {sorted(unknown)}, not in {schema.__name__}"
    left_out = set(schema.model_fields) - fields if whole else set()
    assert not left_out, f"{document.__name__} leaves out {sorted(left_out)} of {schema.__name__}"
