"""Bad input over real HTTP: every limit and unknown field named, every parameter a 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.experiment.limits import Limits
from core.plotting.kinds import PlotSize
from tests.api.conftest import UNTRAINED, FinishedJob, problem

_BIG_CONV = {"class_name": "Conv2D", "config": {"filters": 64, "kernel_size": 3, "padding": "same"}}
_SEQUENCE_LSTM = {"class_name": "LSTM", "config": {"units": 4, "return_sequences": True}}
# One spec past each limit a client can reach, and the field the 422 must name.
LIMIT_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "SAMPLES": ({"dataset": {"n_samples": Limits.SAMPLES + 1}}, "dataset.n_samples"),
    "HIDDEN_LAYERS": (
        {"model": {"hidden_layers": [1] * (Limits.HIDDEN_LAYERS + 1)}},
        "model.hidden_layers",
    ),
    "WIDTH": ({"model": {"hidden_layers": [3, Limits.WIDTH + 1]}}, "model.hidden_layers[1]"),
    "PARAMETERS": ({"model": {"hidden_layers": [Limits.WIDTH] * 8}}, "model.hidden_layers"),
    "EPOCHS": ({"training": {"epochs": Limits.EPOCHS + 1}}, "training.epochs"),
    "BATCH_SIZE": ({"training": {"batch_size": Limits.BATCH_SIZE + 1}}, "training.batch_size"),
    "STEPS": ({"training": {"epochs": 1000, "batch_size": 1}}, "training.epochs"),
    "STEP_CAPTURE_POINTS": (
        {"capture": {"every": "step"}, "training": {"epochs": 1000}},
        "capture.every",
    ),
    "HISTOGRAM_BINS": (
        {"capture": {"histogram_bins": Limits.HISTOGRAM_BINS + 1}},
        "capture.histogram_bins",
    ),
    "HISTOGRAM_SNAPSHOTS": (
        {"capture": {"histogram_snapshots": Limits.HISTOGRAM_SNAPSHOTS + 1}},
        "capture.histogram_snapshots",
    ),
    "RAW_VALUES": (
        {"capture": {"raw": True}, "model": {"hidden_layers": [512, 512, 512]}},
        "capture.raw",
    ),
    "RESULT_VALUES": (
        {
            "capture": {"every": "step"},
            "model": {"hidden_layers": [5] * 10},
            "training": {"epochs": 200},
        },
        "capture",
    ),
    "NAME_LENGTH": ({"name": "x" * (Limits.NAME_LENGTH + 1)}, "name"),
    "CLASSES": ({"dataset": {"kind": "spiral", "classes": Limits.CLASSES + 1}}, "dataset.classes"),
    "CENTERS": ({"dataset": {"kind": "blobs", "centers": Limits.CENTERS + 1}}, "dataset.centers"),
    "SEED": ({"seed": Limits.SEED + 1}, "seed"),
    "PROBE_SIZE": ({"capture": {"probe_size": Limits.PROBE_SIZE + 1}}, "capture.probe_size"),
    "WORK": (
        {
            "dataset": {"kind": "digits"},
            "model": {"hidden_layers": [512] * 3},
            "training": {"epochs": 200},
        },
        "training.epochs",
    ),
    "SEQUENCE_LENGTH": (
        {"dataset": {"kind": "adding", "sequence_length": Limits.SEQUENCE_LENGTH + 1}},
        "dataset.sequence_length",
    ),
    "IMAGE_SIZE": (
        {"dataset": {"kind": "bars", "image_size": Limits.IMAGE_SIZE + 1}},
        "dataset.image_size",
    ),
    "DATA_VALUES": (
        {"dataset": {"kind": "adding", "sequence_length": 1000, "n_samples": 20_000}},
        "dataset.n_samples",
    ),
    "STEP_FLOPS": (
        {
            "dataset": {"kind": "bars", "image_size": 64},
            "model": {"layers": [_BIG_CONV, _BIG_CONV, {"class_name": "Flatten"}]},
            "training": {"batch_size": 256, "epochs": 1},
        },
        "training.batch_size",
    ),
    "FLOPS": (
        {
            "dataset": {"kind": "bars", "image_size": 64},
            "model": {"layers": [_BIG_CONV, {"class_name": "Flatten"}]},
            "training": {"batch_size": 32, "epochs": 40},
        },
        "training.epochs",
    ),
    "STEP_TIMESTEPS": (
        {
            "dataset": {"kind": "adding", "sequence_length": 1000},
            "model": {"layers": [_SEQUENCE_LSTM] * 5 + [{"class_name": "Flatten"}]},
        },
        "dataset.sequence_length",
    ),
    "RUN_TIMESTEPS": (
        {
            "dataset": {"kind": "adding", "sequence_length": 1000},
            "model": {"layers": [{"class_name": "SimpleRNN", "config": {"units": 2}}]},
        },
        "training.epochs",
    ),
}
# Limits no field of a spec sets directly, and why.
NOT_SET_BY_CLIENTS: dict[str, str] = {}


def post(client: httpx.Client, spec: Any) -> httpx.Response:
    return client.post("/v1/experiments", json=spec)


def test_every_limit_has_a_case() -> None:
    limits = {name for name in vars(Limits) if name.isupper()}
    assert limits == set(LIMIT_CASES) | set(NOT_SET_BY_CLIENTS)


@pytest.mark.parametrize("limit", sorted(LIMIT_CASES))
def test_every_limit_is_a_422_naming_its_field(client: httpx.Client, limit: str) -> None:
    spec, field = LIMIT_CASES[limit]
    body = problem(post(client, {**spec, "device": "gpu"}), 422)

    assert [error["field"] for error in body["errors"]] == [field]
    assert body["detail"].startswith(f"{field}: ")


# An LSTM(240) over 1,000 steps: 4.7e8 forward operations a sample, so one step at batch
# 1 (1.4e9) fits STEP_FLOPS while a probe of 100 sequences (4.7e10) is a call of tens of
# seconds, alone at an epoch's edges whatever the capture points.
_WIDE_LSTM = {
    "dataset": {"kind": "adding", "sequence_length": 1000, "n_samples": 100},
    "model": {"layers": [{"class_name": "LSTM", "config": {"units": 240}}]},
    "training": {"epochs": 1, "batch_size": 1},
}


@pytest.mark.parametrize("every", ["epoch", "step"])
def test_a_probe_that_would_hold_a_cancel_back_is_a_422_naming_it(
    client: httpx.Client, every: str
) -> None:
    spec = {**_WIDE_LSTM, "capture": {"every": every, "probe_size": 100}}
    body = problem(post(client, {**spec, "device": "gpu"}), 422)

    assert [error["field"] for error in body["errors"]] == ["capture.probe_size"]
    assert "1.5e+09" in body["detail"]
    # The step alone fits, and so does a probe of 3, step points or not: a step point's
    # activations come from its own batch.
    for fits in ({"probe_size": 3}, {"activations": False}):
        small = {**_WIDE_LSTM, "capture": {"every": every, **fits}}
        assert post(client, {**small, "device": "gpu"}).status_code == 202


def test_recurrent_time_steps_stop_at_one_thousand_a_pass(client: httpx.Client) -> None:
    one = {"class_name": "LSTM", "config": {"units": 4}}
    longest = {"dataset": {"kind": "adding", "sequence_length": 1000}, "model": {"layers": [one]}}
    two = {
        "dataset": {"kind": "adding", "sequence_length": 501},
        "model": {"layers": [_SEQUENCE_LSTM, one]},
    }
    for spec in (longest, two):
        spec["training"] = {"epochs": 1}
    assert post(client, {**longest, "device": "gpu"}).status_code == 202
    body = problem(post(client, {**two, "device": "gpu"}), 422)
    assert [error["field"] for error in body["errors"]] == ["dataset.sequence_length"]
    assert "1,002 time steps" in body["detail"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"surprise": 1}, "surprise"),
        ({"dataset": {"sampels": 10}}, "dataset.sampels"),
        ({"model": {"layer": [5]}}, "model.layer"),
        ({"model": {"initializer": {"std": 1}}}, "model.initializer.std"),
        ({"training": {"lr": 0.1}}, "training.lr"),
        ({"training": {"optimizer": {"beta": 0.9}}}, "training.optimizer.beta"),
        ({"capture": {"everything": True}}, "capture.everything"),
    ],
)
def test_unknown_fields_at_any_depth_are_refused_by_name(
    client: httpx.Client, spec: dict[str, Any], field: str
) -> None:
    body = problem(post(client, {**spec, "device": "gpu"}), 422)
    assert [error["field"] for error in body["errors"]] == [field]
    assert "not permitted" in body["errors"][0]["reason"]


@pytest.mark.parametrize("value", [b"true", b"1e3", b"10.0", b'"10"'])
@pytest.mark.parametrize(
    ("template", "field"),
    [
        (b'{"training": {"epochs": %s}}', "training.epochs"),
        (b'{"dataset": {"n_samples": %s}}', "dataset.n_samples"),
        (b'{"model": {"hidden_layers": [5, %s]}}', "model.hidden_layers[1]"),
        (b'{"seed": %s}', "seed"),
    ],
)
def test_an_integer_field_takes_only_an_integer(
    client: httpx.Client, value: bytes, template: bytes, field: str
) -> None:
    response = client.post(
        "/v1/experiments", content=template % value, headers={"Content-Type": "application/json"}
    )
    body = problem(response, 422)
    assert [error["field"] for error in body["errors"]] == [field]


@pytest.mark.parametrize(
    "body",
    [b"null", b"[]", b'"spec"', b"42", b'{"training": []}', b'{"seed": "one"}', b'{"seed": 1e400}'],
)
def test_bodies_of_the_wrong_shape_are_422(client: httpx.Client, body: bytes) -> None:
    response = client.post(
        "/v1/experiments", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code in (400, 422)
    problem(response, response.status_code)


def test_a_chunked_body_over_the_cap_is_refused_while_it_arrives(client: httpx.Client) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"name": "'
        for _ in range(1000):  # 10 MB offered, far past the 64 KiB cap
            sent += 10_000
            yield b"x" * 10_000
        yield b'"}'

    response = client.post(
        "/v1/experiments", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert problem(response, 413)["type"].endswith("body-too-large")


def test_a_declared_length_over_the_cap_is_refused_before_reading(client: httpx.Client) -> None:
    response = client.post(
        "/v1/experiments",
        content=b"{" + b" " * 70_000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert problem(response, 413)["detail"].endswith("bytes")


# ----------------------------------------------------------- path and query


@pytest.mark.parametrize(
    "job_id",
    [
        "01arz3ndektsv4rrffq69g5fav",  # lower case
        "01ARZ3NDEKTSV4RRFFQ69G5FA",  # 25 characters
        "01ARZ3NDEKTSV4RRFFQ69G5FAVX",  # 27
        "01ARZ3NDEKTSV4RRFFQ69G5FAU",  # U is not Crockford
        "%00",
        "..",
        "x" * 4000,
        "' OR 1=1 --",
    ],
)
def test_ids_of_the_wrong_shape_are_404_without_touching_redis(
    client: httpx.Client, job_id: str
) -> None:
    for path in ("", "/result", "/plots", "/plots/weights.png", "/events"):
        if (job_id, path) == ("..", "/events"):
            continue  # /v1/experiments/../events is /v1/events, a route of its own
        problem(client.get(f"/v1/experiments/{job_id}{path}"), 404)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"width": PlotSize.MIN_WIDTH - 1}, "width"),
        ({"width": PlotSize.MAX_WIDTH + 1}, "width"),
        ({"height": PlotSize.MAX_HEIGHT + 1}, "height"),
        ({"height": "tall"}, "height"),
        ({"dpi": PlotSize.MIN_DPI - 1}, "dpi"),
        ({"dpi": 1.5}, "dpi"),
        ({"expires": -1}, "expires"),
        ({"expires": "soon"}, "expires"),
        ({"sig": "x" * 65}, "sig"),
    ],
)
def test_bad_plot_parameters_are_422_naming_them(
    client: httpx.Client, finished_job: FinishedJob, query: dict[str, Any], field: str
) -> None:
    job = finished_job(plots={"weights": b"png"})
    body = problem(client.get(f"/v1/experiments/{job.id}/plots/weights.png", params=query), 422)
    assert [error["field"] for error in body["errors"]] == [field]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=1e3", "limit"),
        ("cursor=" + "A" * 65, "cursor"),
        ("cursor=%F0%9F%92%A5", "cursor"),
        ("status=QUEUED", "status"),
    ],
)
def test_bad_list_parameters_are_422_naming_them(
    client: httpx.Client, query: str, field: str
) -> None:
    body = problem(client.get(f"/v1/experiments?{query}"), 422)
    assert [error["field"] for error in body["errors"]] == [field]


def test_bad_headers_are_422_naming_them(client: httpx.Client) -> None:
    response = client.post(
        "/v1/experiments", json=UNTRAINED, headers={"Idempotency-Key": "k" * 256}
    )
    assert [error["field"] for error in problem(response, 422)["errors"]] == ["Idempotency-Key"]


def test_a_garbled_last_event_id_replays_from_the_start(
    client: httpx.Client, finished_job: FinishedJob
) -> None:
    job = finished_job()
    response = client.get(
        f"/v1/experiments/{job.id}/events", headers={"Last-Event-ID": "not-an-id"}
    )
    assert response.status_code == 200 and "event: state" in response.text
