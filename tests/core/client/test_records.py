"""The client's typed documents (core.client.records) mirror the API's schemas by hand:
core.client may not import the API. Each field a script reads must be one the service
answers with."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from api import schemas
from core.client import records

MIRRORS: list[tuple[type, type[BaseModel]]] = [
    (records.Progress, schemas.JobProgress),
    (records.Summary, schemas.JobSummary),
    (records.Job, schemas.JobPublic),
    (records.StudyProgress, schemas.StudyProgress),
    (records.Study, schemas.StudyPublic),
    (records.Dataset, schemas.DatasetPublic),
    (records.PlotLink, schemas.PlotLink),
    (records.Page, schemas.JobsPage),
]


@pytest.mark.parametrize(("document", "schema"), MIRRORS, ids=lambda kind: kind.__name__)
def test_every_field_the_client_reads_is_one_the_api_sends(
    document: type, schema: type[BaseModel]
) -> None:
    fields = document.__required_keys__ | document.__optional_keys__  # type: ignore[attr-defined]
    unknown = fields - set(schema.model_fields)
    assert not unknown, f"{document.__name__} reads {sorted(unknown)}, not in {schema.__name__}"


# Documents the client mirrors whole (not only the fields a script reads): a count the
# service adds, such as a study's `missing` children, must not be left out of them.
WHOLE: list[tuple[type, type[BaseModel]]] = [
    (records.Progress, schemas.JobProgress),
    (records.Summary, schemas.JobSummary),
    (records.StudyProgress, schemas.StudyProgress),
    (records.Dataset, schemas.DatasetPublic),
    (records.PlotLink, schemas.PlotLink),
    (records.Page, schemas.JobsPage),
]


@pytest.mark.parametrize(("document", "schema"), WHOLE, ids=lambda kind: kind.__name__)
def test_the_documents_mirrored_whole_have_every_field_of_the_api(
    document: type, schema: type[BaseModel]
) -> None:
    fields = document.__required_keys__ | document.__optional_keys__  # type: ignore[attr-defined]
    assert fields == set(schema.model_fields), f"{document.__name__} is not {schema.__name__}"
