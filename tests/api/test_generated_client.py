"""A client generated from /openapi.json by openapi-python-client works without hand fixes.

The generator runs offline on the document the running server serves; anything
it leaves out fails the test (bar a body type it cannot send where the body may
go as bytes), and every operation must have its function;
the client it writes then drives that server and a real worker: typed bodies
in, typed records, results and problem documents out, PNG and .npz as bytes.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import re
import shutil
import sys
import typing
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import numpy as np
import pytest
from openapi_python_client import generate
from openapi_python_client.config import Config, ConfigFile, MetaType
from openapi_python_client.parser.errors import GeneratorError

from api.openapi import operations
from tests.api.test_datasets import POINTS
from tests.conftest import KeysServer, Server, Worker, free_port, serve_api, wait_for

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


@contextlib.contextmanager
def generated_package(
    server: Server, folder: Path, package: str
) -> Iterator[tuple[ModuleType, dict[str, Any]]]:
    """The package generated from `server`'s document, imported, and the document; the
    package is dropped from sys.modules afterwards."""
    source = folder / "openapi.json"
    with server.client() as http:
        source.write_bytes(http.get("/openapi.json").content)
    document = json.loads(source.read_bytes())
    config = Config.from_sources(
        # Its own formatting leaves `1and` where ruff writes `1 and`, which Python warns about.
        ConfigFile(package_name_override=package, post_hooks=[f"{RUFF} format ."]),
        MetaType.NONE,
        source,
        "utf-8",
        overwrite=True,
        output_path=folder / package,
    )
    check_generated(generate(config=config), document)
    sys.path.insert(0, str(folder))
    try:
        imported = importlib.import_module(package)
        for _, _, operation in operations(document):
            tag = operation["tags"][0]
            assert importlib.util.find_spec(f"{package}.api.{tag}.{operation['operationId']}")
        yield imported, document
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name.split(".")[0] == package]:
            del sys.modules[name]
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def generated(api_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The package generated from the open service's document, imported."""
    with generated_package(api_server, tmp_path_factory.mktemp("generated"), PACKAGE) as made:
        yield made[0]


def module(name: str, package: str = PACKAGE) -> ModuleType:
    return importlib.import_module(f"{package}.{name}")


@pytest.fixture
def client(generated: Any, api_server: Server) -> Any:
    return generated.Client(base_url=api_server.url, raise_on_unexpected_status=True)


def assert_reads_as_sent(typed: Any, api_server: Server, path: str) -> None:
    """The typed object holds the whole body the service sends for `path`: written back as
    JSON it is that body, so no field was dropped or left a free-form dict on the way."""
    with api_server.client() as http:
        sent = http.get(path).json()
    assert instants(typed.to_dict()) == instants(sent)
    assert not list(untyped(typed, "")), list(untyped(typed, ""))


# What is free-form by nature: a JSON merge patch, a study's axis values (any spec field's),
# Keras' build_config.
FREE_FORM = {"patch", "values", "axes", "build_config"}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def instants(value: Any) -> Any:
    """`value` with its timestamps as datetimes: the same instant is written `Z` by the
    service and `+00:00` by a generated client."""
    if isinstance(value, dict):
        return {key: instants(item) for key, item in value.items()}
    if isinstance(value, list):
        return [instants(item) for item in value]
    if isinstance(value, str) and TIMESTAMP.match(value):
        return datetime.fromisoformat(value)
    return value


def untyped(value: Any, path: str) -> Iterator[str]:
    """The paths in a generated client's object where a plain dict was left, not a model."""
    if path.rpartition(".")[2] in FREE_FORM:
        return
    if isinstance(value, dict):
        yield path
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from untyped(item, f"{path}[{index}]")
    elif attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            inner = getattr(value, field.name)
            if field.name == "additional_properties":
                for name, item in inner.items():
                    yield from untyped(item, f"{path}.{name}")
            else:
                yield from untyped(inner, f"{path}.{field.name}")


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
    client: Any, api_server: Server, worker_process: Worker
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
    assert result.epochs_run == 3 and result.version == 3
    assert isinstance(result.capture.activations, models.CaptureActivations)
    assert result.capture.activations.step_source == "training_batch"
    assert_reads_as_sent(result, api_server, f"/v1/experiments/{job.id}/result")
    assert isinstance(result.spec, models.ExperimentSpec)
    assert result.spec.seed == 3 and result.spec.training.epochs == 3
    evidence = result.diagnosis.evidence
    assert isinstance(evidence, models.Evidence)
    assert isinstance(evidence.gradient_flow, models.GradientFlow)
    assert evidence.gradient_flow.first_layer == "hidden_1"
    assert set(evidence.gradient_flow.median_rms_grad.to_dict()) == set(result.series.to_dict())
    assert isinstance(evidence.saturated["hidden_1"], float)  # sigmoid layers
    assert evidence.not_judged.to_dict() == {}
    prescriptions = result.diagnosis.prescriptions
    assert isinstance(prescriptions, models.DiagnosisPrescriptionsType0), prescriptions
    fixes = prescriptions.additional_properties.values()
    measured = [fix.measured for offered in fixes for fix in offered if fix.measured]
    assert measured, "the tutorial's vanishing run has measured fixes"
    assert all(isinstance(m, models.MeasuredRemedy) for m in measured)
    assert all(isinstance(m.gradient_ratio, models.RatioChange) for m in measured)
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
    client: Any, api_server: Server, worker_process: Worker
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
    assert_reads_as_sent(result, api_server, f"/v1/experiments/{job.id}/result")
    assert result.dataset.task == "regression"
    assert isinstance(result.spec.model.layers[0], models.LSTMLayer)
    through = result.diagnosis.evidence.through_time
    assert isinstance(through, models.ThroughTimeEvidence)
    assert set(through.first_to_last_ratio.to_dict()) == {"lstm_1"}
    # every layer before the output is recurrent: no depth ratio, and it says why
    assert result.diagnosis.evidence.gradient_flow.first_layer is None
    assert "vanishing" in result.diagnosis.evidence.not_judged.to_dict()
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
    result = module("api.experiments.read_result").sync(job_id=record.id, client=client)
    assert isinstance(result, models.ExperimentResult), result
    assert (result.dataset.name, result.dataset.id) == ("points.csv", upload.json()["id"])
    with api_server.client() as http:
        assert http.delete(f"/v1/datasets/{upload.json()['id']}").status_code == 204


def test_a_generated_client_submits_a_typed_study(client: Any, api_server: Server) -> None:
    models = module("models")
    # On the GPU queue, which no test worker consumes: it is only queued, then deleted.
    base = models.ExperimentSpec(device=models.Device.GPU, training=models.TrainingSpec(epochs=2))
    body = models.StudyCreate(
        base=base, axes=models.StudyCreateAxes.from_dict({"model.activation": ["relu", "tanh"]})
    )
    study = module("api.studies.create_study").sync(client=client, body=body)
    assert isinstance(study, models.StudyPublic), study
    assert len(study.configs) == 2 and study.progress.children == 2
    assert_reads_as_sent(study, api_server, f"/v1/studies/{study.id}")
    # the base as it was given, typed
    assert isinstance(study.base, models.ExperimentSpec)
    assert study.base.device == models.Device.GPU and study.base.training.epochs == 2
    assert study.base.to_dict() == base.to_dict()
    again = module("api.studies.read_study").sync(study_id=study.id, client=client)
    assert isinstance(again, models.StudyPublic) and again.id == study.id
    deleted = module("api.studies.delete_study").sync_detailed(study_id=study.id, client=client)
    assert deleted.status_code == 204


def test_a_generated_client_reads_the_presets_typed(client: Any, api_server: Server) -> None:
    """Each preset's spec is an ExperimentSpec and each study preset's body a StudyCreate, read
    as the service sends them (partial specs: what is left out stays out), ready to POST."""
    models = module("models")
    presets = module("api.presets.list_presets").sync(client=client)
    assert isinstance(presets, models.PresetList), presets
    assert_reads_as_sent(presets, api_server, "/v1/presets")
    assert presets.items and presets.studies
    for preset in presets.items:
        assert isinstance(preset.spec, models.ExperimentSpec), preset.name
        assert isinstance(preset.spec.model, models.ModelSpec), preset.name
        assert isinstance(preset.spec.seed, module("types").Unset), "presets leave the seed out"
    for preset in presets.studies:
        assert isinstance(preset.study, models.StudyCreate), preset.name
        assert isinstance(preset.study.base, models.ExperimentSpec), preset.name
    layered = {p.name: p.study.base for p in presets.studies}["recurrent-cells"]
    assert isinstance(layered.model.layers[0], models.LSTMLayer)

    # A study preset's typed body goes back as it is (on the GPU queue, no worker: only queued)
    tutorial = {p.name: p.study for p in presets.studies}["tutorial"]
    tutorial.base.device = models.Device.GPU
    study = module("api.studies.create_study").sync(client=client, body=tutorial)
    assert isinstance(study, models.StudyPublic), study
    assert study.base.to_dict() == tutorial.base.to_dict()
    module("api.studies.delete_study").sync_detailed(study_id=study.id, client=client)


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


def client_of(function: Any) -> Any:
    """The type a generated function declares for its `client`."""
    return typing.get_type_hints(function)["client"]


def test_in_keys_mode_a_generated_client_authenticates(
    keys_server: KeysServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Generated from the document of a service with API keys: every operation but the
    probes asks for an AuthenticatedClient, whose token gets typed records; another
    owner's record and an unknown key are typed problems (404, 401)."""
    package = "gradwatch_keys_client"
    folder = tmp_path_factory.mktemp("generated_keys")
    with generated_package(keys_server, folder, package) as (client_package, document):
        schemes = document["components"]["securitySchemes"]
        assert {scheme["scheme"] for scheme in schemes.values() if "scheme" in scheme} == {"bearer"}
        models = module("models", package)
        create = module("api.experiments.create_experiment", package)
        read = module("api.experiments.read_experiment", package)
        healthz = module("api.health.healthz", package)
        # what a type checker holds a caller to: a token wherever the service wants a key
        authenticated, plain = client_package.AuthenticatedClient, client_package.Client
        assert client_of(read.sync) is authenticated
        assert client_of(create.sync) is authenticated
        assert plain in typing.get_args(client_of(healthz.sync))

        def as_(name: str) -> Any:
            return client_package.AuthenticatedClient(
                base_url=keys_server.url, token=keys_server.keys[name]
            )

        alice = as_("alice")
        # On the GPU queue, which no test worker consumes: it is only queued, then deleted.
        spec = models.ExperimentSpec(
            device=models.Device.GPU, training=models.TrainingSpec(epochs=2)
        )
        job = create.sync(client=alice, body=spec)
        assert isinstance(job, models.JobPublic), job
        again = read.sync(job_id=job.id, client=as_("alice2"))  # the same owner's other key
        assert isinstance(again, models.JobPublic) and again.id == job.id

        others = read.sync(job_id=job.id, client=as_("bob"))
        assert isinstance(others, models.ProblemDetails) and others.status == 404, others
        stranger = client_package.AuthenticatedClient(
            base_url=keys_server.url, token="gw_" + "x" * 40
        )
        unknown = read.sync(job_id=job.id, client=stranger)
        assert isinstance(unknown, models.ProblemDetails) and unknown.status == 401, unknown
        anonymous = client_package.Client(base_url=keys_server.url)
        missing = create.sync(client=anonymous, body=spec)
        assert isinstance(missing, models.ProblemDetails) and missing.status == 401, missing
        # probes need no key
        assert healthz.sync_detailed(client=anonymous).status_code == 200

        deleted = module("api.experiments.delete_experiment", package).sync_detailed(
            job_id=job.id, client=alice
        )
        assert deleted.status_code == 204


def test_a_generated_client_gets_a_typed_503_while_redis_is_unreachable(
    generated: Any, service_env: dict[str, str]
) -> None:
    """With nothing listening where Redis should be, every store call is a typed problem
    document, 503 `store-unavailable` with Retry-After, never a 500 or an untyped body."""
    models = module("models")
    env = {**service_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with serve_api(env) as server:
        client = generated.Client(base_url=server.url)
        answers = [
            module("api.experiments.read_experiment").sync_detailed(
                job_id="01JD8X3Q7R5M2N4P6T8V0W2Y4Z", client=client
            ),
            module("api.experiments.list_experiments").sync_detailed(client=client),
            module("api.experiments.create_experiment").sync_detailed(
                client=client, body=models.ExperimentSpec(training=models.TrainingSpec(epochs=2))
            ),
            module("api.studies.list_studies").sync_detailed(client=client),
        ]
        for answer in answers:
            assert answer.status_code == 503, answer
            problem = answer.parsed
            assert isinstance(problem, models.ProblemDetails), answer.content
            assert problem.status == 503 and problem.type_.endswith("store-unavailable"), problem
            assert answer.headers["retry-after"] == "5"
