"""A client generated from /openapi.json by openapi-python-client works without hand fixes.

The generator runs offline on the document the running server serves; anything
it leaves out fails the test (bar a body type it cannot send where the body may
go as bytes), and every operation must have its function;
the client it writes then drives that server and a real worker: typed bodies
in, typed records, results and problem documents out, PNG and .npz as bytes.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from openapi_python_client import generate
from openapi_python_client.config import Config, ConfigFile, MetaType
from openapi_python_client.parser.errors import GeneratorError

from api.openapi import operations
from tests.api.test_datasets import POINTS
from tests.conftest import Server, Worker, wait_for

PACKAGE = "gradwatch_client"
RUFF = Path(sys.executable).with_name("ruff")


def request_types(document: dict[str, Any], header: str) -> set[str]:
    """The media types of the request body of the operation a generator's warning names."""
    match = re.match(r"WARNING parsing (\w+) (\S+) within", header)
    assert match, header
    body = document["paths"][match[2]][match[1].lower()].get("requestBody", {})
    return set(body.get("content", {}))


def check_generated(errors: Sequence[GeneratorError], document: dict[str, Any]) -> None:
    """Nothing of the document was left out, but a body type the generator cannot send
    (text/csv, application/zip, ...) where the same body may be sent as bytes."""
    for error in errors:
        detail = error.detail or ""
        assert detail.startswith("Unsupported content type "), (error.header, detail)
        assert detail.split()[-1] in request_types(document, error.header), error
        assert "application/octet-stream" in request_types(document, error.header), error


@pytest.fixture(scope="module")
def generated(api_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The generated package, imported; it is dropped from sys.modules afterwards."""
    folder = tmp_path_factory.mktemp("generated")
    source = folder / "openapi.json"
    with api_server.client() as http:
        source.write_bytes(http.get("/openapi.json").content)
    document = json.loads(source.read_bytes())
    config = Config.from_sources(
        # Its own formatting leaves `1and` where ruff writes `1 and`, which Python warns about.
        ConfigFile(package_name_override=PACKAGE, post_hooks=[f"{RUFF} format ."]),
        MetaType.NONE,
        source,
        "utf-8",
        overwrite=True,
        output_path=folder / PACKAGE,
    )
    check_generated(generate(config=config), document)
    sys.path.insert(0, str(folder))
    try:
        package = importlib.import_module(PACKAGE)
        for _, _, operation in operations(document):
            tag = operation["tags"][0]
            assert importlib.util.find_spec(f"{PACKAGE}.api.{tag}.{operation['operationId']}")
        yield package
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]
        shutil.rmtree(folder, ignore_errors=True)


def module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


@pytest.fixture
def client(generated: Any, api_server: Server) -> Any:
    return generated.Client(base_url=api_server.url, raise_on_unexpected_status=True)


def wait_until_finished(client: Any, job_id: str) -> Any:
    """The job's typed record once it has finished."""
    models = module("models")
    read = module("api.experiments.read_experiment")

    def finished() -> bool:
        record = read.sync(job_id=job_id, client=client)
        assert isinstance(record, models.JobPublic), record
        return bool(record.status.value in ("succeeded", "failed", "cancelled"))

    wait_for(finished, timeout=180, what=f"experiment {job_id}")
    return read.sync(job_id=job_id, client=client)


def test_a_generated_client_runs_an_experiment_end_to_end(
    client: Any, worker_process: Worker
) -> None:
    models = module("models")
    experiments = "api.experiments"
    spec = models.ExperimentSpec(
        seed=3,
        training=models.TrainingSpec(epochs=3),
        capture=models.CaptureSpec(raw=True),
    )
    job = module(f"{experiments}.create_experiment").sync(client=client, body=spec)
    assert isinstance(job, models.JobPublic), job
    assert job.spec.training.epochs == 3

    record = wait_until_finished(client, job.id)
    assert record.status == models.JobStatus.SUCCEEDED, record
    assert isinstance(record.summary, models.JobSummary)

    result = module(f"{experiments}.read_result").sync(job_id=job.id, client=client)
    assert isinstance(result, models.ExperimentResult), result
    assert result.epochs_run == 3 and result.version == 2
    hidden = result.series["hidden_1"]
    assert isinstance(hidden, models.LayerSeries)
    assert len(hidden["kernel"].grad_std) == result.capture.points == 3
    assert isinstance(result.diagnosis, models.Diagnosis)
    assert result.tutorial.loss and result.dataset.kind == "circles"

    png = module("api.plots.read_plot").sync(job_id=job.id, name="weights", client=client)
    assert isinstance(png, module("types").File)
    assert png.payload.read().startswith(b"\x89PNG")
    arrays = module(f"{experiments}.read_arrays").sync(job_id=job.id, client=client)
    assert isinstance(arrays, module("types").File)
    with np.load(io.BytesIO(arrays.payload.read())) as npz:
        assert npz.files


def test_a_generated_client_reads_a_recurrent_result_through_time(
    client: Any, worker_process: Worker
) -> None:
    models = module("models")
    spec = models.ExperimentSpec.from_dict(
        {
            "seed": 5,
            "dataset": {"kind": "adding", "n_samples": 200, "sequence_length": 12},
            "model": {"layers": [{"class_name": "LSTM", "config": {"units": 4}}]},
            "training": {"epochs": 2},
        }
    )
    job = module("api.experiments.create_experiment").sync(client=client, body=spec)
    assert isinstance(job, models.JobPublic), job
    assert wait_until_finished(client, job.id).status == models.JobStatus.SUCCEEDED

    result = module("api.experiments.read_result").sync(job_id=job.id, client=client)
    assert isinstance(result, models.ExperimentResult), result
    assert result.dataset.task == "regression"
    assert [layer.class_name for layer in result.layers] == ["LSTM", "Dense"]
    lstm = result.through_time["lstm_1"]
    assert isinstance(lstm, models.LayerThroughTime)
    assert lstm.timesteps == list(range(1, 13))
    assert len(lstm.gradient_norm) == result.capture.points
    assert result.metrics.baseline.loss is not None
    assert "recurrent_kernel" in result.series["lstm_1"]


def test_a_generated_client_trains_on_either_kind_of_dataset(
    client: Any, api_server: Server, worker_process: Worker
) -> None:
    """The dataset section's union goes in typed and comes back typed, each member as
    itself: a built-in set, and a dataset uploaded first (its `data` filled in)."""
    models = module("models")
    with api_server.client() as http:
        upload = http.post("/v1/datasets", files={"file": ("points.csv", POINTS, "text/csv")})
    assert upload.status_code in (200, 201), upload.text
    sections = [
        models.BuiltinDatasetSpec(kind=models.BuiltinDatasetSpecKind.MOONS, n_samples=40),
        models.UploadedDatasetSpec(kind="uploaded", id=upload.json()["id"], validation_split=0.25),
    ]
    for dataset in sections:
        spec = models.ExperimentSpec(
            seed=2, dataset=dataset, training=models.TrainingSpec(epochs=2, batch_size=8)
        )
        job = module("api.experiments.create_experiment").sync(client=client, body=spec)
        assert isinstance(job, models.JobPublic), job
        record = wait_until_finished(client, job.id)
        assert record.status == models.JobStatus.SUCCEEDED, record
        assert type(record.spec.dataset) is type(dataset)
    assert record.spec.dataset.data.name == "points.csv"
    assert record.spec.dataset.data.samples == 40
    with api_server.client() as http:
        assert http.delete(f"/v1/datasets/{upload.json()['id']}").status_code == 204


def test_a_generated_client_submits_a_typed_study(client: Any) -> None:
    models = module("models")
    # On the GPU queue, which no test worker consumes: it is only queued, then deleted.
    base = models.ExperimentSpec(device=models.Device.GPU, training=models.TrainingSpec(epochs=2))
    body = models.StudyCreate(
        base=base, axes=models.StudyCreateAxes.from_dict({"model.activation": ["relu", "tanh"]})
    )
    study = module("api.studies.create_study").sync(client=client, body=body)
    assert isinstance(study, models.StudyPublic), study
    assert len(study.configs) == 2 and study.progress.children == 2
    again = module("api.studies.read_study").sync(study_id=study.id, client=client)
    assert isinstance(again, models.StudyPublic) and again.id == study.id
    deleted = module("api.studies.delete_study").sync_detailed(study_id=study.id, client=client)
    assert deleted.status_code == 204


def test_every_error_reaches_a_generated_client_as_a_problem_document(client: Any) -> None:
    models = module("models")
    experiments = "api.experiments"
    missing = module(f"{experiments}.read_experiment").sync(job_id="nope", client=client)
    assert isinstance(missing, models.ProblemDetails) and missing.status == 404

    too_long = models.ExperimentSpec(training=models.TrainingSpec(epochs=1_000_000))
    invalid = module(f"{experiments}.create_experiment").sync(client=client, body=too_long)
    assert isinstance(invalid, models.ProblemDetails) and invalid.status == 422
    assert [error.field for error in invalid.errors] == ["training.epochs"]

    page = module(f"{experiments}.list_experiments").sync(client=client, limit=0)
    assert isinstance(page, models.ProblemDetails)
    assert page.errors[0].field == "limit"

    queued = module(f"{experiments}.create_experiment").sync(
        client=client, body=models.ExperimentSpec(device=models.Device.GPU)
    )
    early = module(f"{experiments}.read_result").sync(job_id=queued.id, client=client)
    assert isinstance(early, models.ProblemDetails) and early.status == 409
    assert early["job_status"] == "queued"  # an extension member, kept
    module(f"{experiments}.delete_experiment").sync_detailed(job_id=queued.id, client=client)
