"""Proving prescriptions in one request: real HTTP server, real Celery worker, real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from api.schemas import JobPublic, StudyPublic, StudySummary
from core.experiment.prescriptions import prescribe
from core.experiment.presets import cell, conv_stack, layered_spec
from core.experiment.spec import ExperimentSpec
from core.settings import Settings
from tests.api.conftest import UNTRAINED, FinishedJob, problem
from tests.api.test_plots import png_size
from tests.api.test_studies import UNKNOWN, post_study, wait_for_study
from tests.api.test_studies import UNTRAINED as UNTRAINED_STUDY
from tests.conftest import KeysServer, Server, Worker, wait_for

# The tutorial's sigmoid network, briefly: vanishing from the first epochs.
RUN: dict[str, Any] = {"seed": 3, "dataset": {"n_samples": 200}, "training": {"epochs": 3}}
RUN_SECONDS = 180.0


def wait_for_run(client: httpx.Client, job_id: str) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    def finished() -> bool:
        seen[:] = [client.get(f"/v1/experiments/{job_id}").json()]
        return seen[0]["status"] in ("succeeded", "failed", "cancelled")

    wait_for(finished, timeout=RUN_SECONDS, what=f"experiment {job_id} to finish")
    return seen[0]


def remedies(client: httpx.Client, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return client.post(f"{path}/remedies", json={} if body is None else body)


def accepted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    study: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/v1/studies/{study['id']}"
    StudyPublic.model_validate(study)
    return study


@pytest.fixture(scope="module")
def run(api_server: Server, worker_process: Worker) -> Iterator[dict[str, Any]]:
    """The brief tutorial run, trained; deleted afterwards."""
    with api_server.client() as client:
        response = client.post("/v1/experiments", json=RUN)
        assert response.status_code == 202, response.text
        record = wait_for_run(client, response.json()["id"])
        assert record["status"] == "succeeded", record
        yield record
        client.delete(f"/v1/experiments/{record['id']}")


@pytest.fixture(scope="module")
def proof(api_server: Server, run: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The study that proves two of the run's fixes over two seeds, trained to the end."""
    with api_server.client() as client:
        body = {"fixes": ["tanh", "batch_norm"], "seeds": 2}
        study = accepted(remedies(client, f"/v1/experiments/{run['id']}", body))
        yield wait_for_study(client, study["id"], "succeeded", "failed", "cancelled")
        client.delete(f"/v1/studies/{study['id']}")


def test_the_run_is_vanishing_and_prescribes_the_fixes_proved(run: dict[str, Any]) -> None:
    assert "vanishing" in run["summary"]["verdicts"]
    assert run["remedy_studies"] == [] or all(isinstance(i, str) for i in run["remedy_studies"])


def test_the_study_is_the_baseline_then_each_fix_on_the_runs_seeds_and_graph(
    client: httpx.Client, run: dict[str, Any], proof: dict[str, Any]
) -> None:
    assert proof["status"] == "succeeded", proof
    assert [config["label"] for config in proof["configs"]] == ["baseline", "tanh", "batch_norm"]
    assert proof["configs"][1]["values"] == {"model.activation": "tanh"}
    assert proof["remedies"]["source"] == {"kind": "experiment", "experiment": run["id"]}
    result = client.get(f"/v1/experiments/{run['id']}/result").json()
    children = [child["id"] for config in proof["configs"] for child in config["children"]]
    specs = [client.get(f"/v1/experiments/{child}").json()["spec"] for child in children]
    assert [spec["seed"] for spec in specs] == [run["spec"]["seed"] + k for k in (0, 1)] * 3
    assert {spec["training"]["graph"] for spec in specs} == {result["timing"]["graph"]}
    # The baseline's first seed is the run again: the same data and starting draws.
    baseline = client.get(f"/v1/experiments/{children[0]}").json()
    assert baseline["summary"]["verdicts"] == run["summary"]["verdicts"]
    assert baseline["summary"]["loss"] == pytest.approx(run["summary"]["loss"], rel=1e-5)
    assert specs[2]["model"]["activation"] == "tanh" and specs[4]["model"]["batch_norm"]


def test_the_summary_says_per_fix_what_it_cleared_and_at_what_cost(
    client: httpx.Client, proof: dict[str, Any]
) -> None:
    document = client.get(f"/v1/studies/{proof['id']}/summary").json()
    summary = StudySummary.model_validate(document)
    assert summary.remedies is not None
    assert summary.remedies.baseline.verdicts.get("vanishing") == 2
    rows = {row.fix: row for row in summary.remedies.fixes}
    assert list(rows) == ["tanh", "batch_norm"]
    for row in rows.values():
        assert row.seeds == 2 and row.accuracy_change.n == 2 and row.loss_change.n == 2
        (verdict,) = row.verdicts
        assert verdict.verdict == "vanishing" and verdict.baseline == 2
        assert verdict.cleared + verdict.after == 2
        assert row.gradient_ratio.before is not None and row.gradient_ratio.after is not None
    # tanh's slope is 1 at zero: its gradient reaches the first layer (the measured truth).
    assert rows["tanh"].gradient_ratio.after > rows["tanh"].gradient_ratio.before  # type: ignore[operator]
    assert proof["summary"]["remedies"] == document["remedies"]


def test_the_study_has_the_remedies_plot_drawn_and_shareable(
    client: httpx.Client, proof: dict[str, Any]
) -> None:
    assert proof["plots"][-1] == "remedies" and "curves" in proof["plots"]
    listed = client.get(f"/v1/studies/{proof['id']}/plots").json()["items"]
    (item,) = [plot for plot in listed if plot["name"] == "remedies"]
    assert "cleared" in item["description"]
    response = client.get(item["url"])
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert png_size(response.content) == (900, 600)
    link = client.post(f"/v1/studies/{proof['id']}/plots/remedies/share", params={"width": 450})
    assert link.status_code == 200, link.text
    shared = client.get(link.json()["url"])  # its signature is the grant
    assert shared.status_code == 200 and png_size(shared.content)[0] == 450


def test_the_experiment_links_its_remedy_studies(
    client: httpx.Client, run: dict[str, Any], proof: dict[str, Any]
) -> None:
    record = JobPublic.model_validate(client.get(f"/v1/experiments/{run['id']}").json())
    assert proof["id"] in record.remedy_studies


def test_a_configuration_of_a_study_is_proved_the_same_way(
    client: httpx.Client, proof: dict[str, Any]
) -> None:
    path = f"/v1/studies/{proof['id']}/configs/0"
    again = accepted(remedies(client, path, {"fixes": ["relu"], "seeds": 1}))
    try:
        baseline = proof["configs"][0]["children"][0]["id"]
        assert again["remedies"]["source"] == {
            "kind": "study_config",
            "study": proof["id"],
            "config": 0,
            "experiment": baseline,
        }
        assert [config["label"] for config in again["configs"]] == ["baseline", "relu"]
        assert client.get(f"/v1/studies/{proof['id']}").json()["remedy_studies"] == [again["id"]]
        body = problem(remedies(client, f"/v1/studies/{proof['id']}/configs/3"), 404)
        assert "0 to 2" in body["detail"]
    finally:
        client.post(f"/v1/studies/{again['id']}/cancel")
        client.delete(f"/v1/studies/{again['id']}")


# Layer lists: a deep sigmoid convolution vanishes through depth, a SimpleRNN through time.
BARS = {"kind": "bars", "image_size": 8, "noise": 0.5, "n_samples": 200}
RECALL = {"kind": "recall", "classes": 4, "n_samples": 200, "sequence_length": 30, "noise": 0.0}
SMALL_DRAWS = {"class_name": "RandomNormal", "config": {"stddev": 0.05}}  # it forgets fast
CONV = layered_spec("conv", BARS, conv_stack(4, "sigmoid"), 2) | {"seed": 1}
RNN = layered_spec("rnn", RECALL, [cell("SimpleRNN", 16, recurrent_initializer=SMALL_DRAWS)], 2) | {
    "seed": 1
}


@pytest.mark.parametrize(
    ("spec", "verdict", "fixes", "proved", "layer"),
    [
        (
            CONV,
            "vanishing",
            ["tanh", "batch_norm", "relu", "residual"],
            "batch_norm",
            "BatchNormalization",
        ),
        (RNN, "vanishing_through_time", ["lstm", "gru"], "lstm", "LSTM"),
    ],
    ids=["conv", "rnn"],
)
def test_a_layer_list_run_is_prescribed_whole_lists_and_proves_them(
    client: httpx.Client,
    worker_process: Worker,
    spec: dict[str, Any],
    verdict: str,
    fixes: list[str],
    proved: str,
    layer: str,
) -> None:
    response = client.post("/v1/experiments", json=spec)
    assert response.status_code == 202, response.text
    run = wait_for_run(client, response.json()["id"])
    study: dict[str, Any] | None = None
    try:
        assert verdict in run["summary"]["verdicts"], run["summary"]
        result = client.get(f"/v1/experiments/{run['id']}/result").json()
        prescribed = result["diagnosis"]["prescriptions"][verdict]
        assert [item["fix"] for item in prescribed] == fixes
        assert all(list(item["patch"]["model"]) == ["layers"] for item in prescribed)
        study = accepted(
            remedies(client, f"/v1/experiments/{run['id']}", {"fixes": [proved], "seeds": 1})
        )
        baseline, fixed = (config["children"][0]["id"] for config in study["configs"])
        baseline_spec = client.get(f"/v1/experiments/{baseline}").json()["spec"]
        assert baseline_spec["model"] == run["spec"]["model"]
        classes = [
            item["class_name"]
            for item in client.get(f"/v1/experiments/{fixed}").json()["spec"]["model"]["layers"]
        ]
        assert layer in classes
    finally:
        if study is not None:
            client.post(f"/v1/studies/{study['id']}/cancel")
            client.delete(f"/v1/studies/{study['id']}")
        client.delete(f"/v1/experiments/{run['id']}")


# ------------------------------------------------------------- refusals (nothing trained)


def stored_run(finished_job: FinishedJob, *verdicts: str) -> str:
    """A succeeded run made in the store (on the untrained queue), with these verdicts."""
    spec = ExperimentSpec.model_validate(UNTRAINED)
    diagnosis = {
        "verdicts": list(verdicts),
        "evidence": {"gradient_flow": {"first_to_last_rms_ratio": 0.01, "max_grad_norm": 1.0}},
    }
    result = {"spec": spec.to_json_dict(), "diagnosis": diagnosis, "timing": {"graph": "plain"}}
    return finished_job(result_json=orjson.dumps(result).decode()).id


def test_by_default_every_prescribed_fix_over_three_seeds(
    client: httpx.Client, finished_job: FinishedJob
) -> None:
    run_id = stored_run(finished_job, "vanishing")
    response = client.post(f"/v1/experiments/{run_id}/remedies")  # no body at all
    study = accepted(response)
    try:
        spec = ExperimentSpec.model_validate(UNTRAINED)
        fixes = [item["fix"] for item in prescribe(spec, {"verdicts": ["vanishing"]})["vanishing"]]
        assert [config["label"] for config in study["configs"]] == ["baseline", *fixes]
        assert study["seeds"] == 3 and study["progress"]["children"] == 3 * (1 + len(fixes))
        assert study["remedies"]["fixes"]["tanh"]["verdicts"] == ["vanishing"]
    finally:
        client.post(f"/v1/studies/{study['id']}/cancel")
        client.delete(f"/v1/studies/{study['id']}")


def test_a_run_not_finished_is_a_409(client: httpx.Client) -> None:
    queued = client.post("/v1/experiments", json=UNTRAINED).json()
    try:
        body = problem(remedies(client, f"/v1/experiments/{queued['id']}"), 409)
        assert body["job_status"] == "queued"
    finally:
        client.delete(f"/v1/experiments/{queued['id']}")


def test_a_healthy_run_prescribes_nothing_to_prove(
    client: httpx.Client, finished_job: FinishedJob
) -> None:
    body = problem(remedies(client, f"/v1/experiments/{stored_run(finished_job, 'healthy')}"), 422)
    assert body["verdicts"] == ["healthy"] and "prescribe no fix" in body["detail"]


@pytest.mark.parametrize(
    ("request_body", "field", "words"),
    [
        ({"fixes": ["tanh", "leaky_relu"]}, "fixes[1]", "not prescribed for this run"),
        ({"fixes": ["no_such_fix"]}, "fixes[0]", "tanh"),
        ({"seeds": 6}, "seeds", "limit of 5"),
        ({"seeds": 0}, "seeds", "greater than or equal to 1"),
        ({"fixes": []}, "fixes", "at least 1"),
        ({"seeds": 2, "extra": 1}, "extra", "not permitted"),
    ],
)
def test_a_bad_request_is_a_422_naming_the_field(
    client: httpx.Client,
    finished_job: FinishedJob,
    settings: Settings,
    request_body: dict[str, Any],
    field: str,
    words: str,
) -> None:
    assert settings.remedy_max_seeds == 5
    run_id = stored_run(finished_job, "vanishing")
    body = problem(remedies(client, f"/v1/experiments/{run_id}", request_body), 422)
    reasons = {error["field"]: error["reason"] for error in body["errors"]}
    assert words in reasons[field], reasons


def test_an_unknown_or_unfinished_study_is_refused(client: httpx.Client) -> None:
    problem(remedies(client, f"/v1/studies/{UNKNOWN}/configs/0"), 404)
    problem(remedies(client, f"/v1/experiments/{UNKNOWN}"), 404)
    study = post_study(client, UNTRAINED_STUDY)
    try:
        body = problem(remedies(client, f"/v1/studies/{study['id']}/configs/0"), 409)
        assert body["study_status"] == "queued"
    finally:
        client.delete(f"/v1/studies/{study['id']}")


def test_another_owners_run_is_a_404(keys_server: KeysServer) -> None:
    with keys_server.client_of("alice") as alice, keys_server.client_of("bob") as bob:
        mine = alice.post("/v1/experiments", json=UNTRAINED).json()
        try:
            theirs = problem(remedies(bob, f"/v1/experiments/{mine['id']}"), 404)
            unknown = problem(remedies(bob, f"/v1/experiments/{UNKNOWN}"), 404)
            assert theirs["title"] == unknown["title"]
            assert problem(remedies(alice, f"/v1/experiments/{mine['id']}"), 409)
        finally:
            alice.delete(f"/v1/experiments/{mine['id']}")


def test_the_remedies_routes_are_documented(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/experiments/{job_id}/remedies",
        "/v1/studies/{study_id}/configs/{index}/remedies",
    ):
        operation = paths[path]["post"]
        assert {"202", "404", "409", "422"} <= set(operation["responses"]), path
        assert operation["requestBody"]["content"]["application/json"]["schema"]
