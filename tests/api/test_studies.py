"""Studies end to end: real HTTP server, real Celery worker, real training, real Redis."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest
import redis

from core.plotting.catalog import STUDY_PLOTS
from core.plotting.study.remedies import REMEDIES
from core.settings import Settings
from core.store.stores import StudyStore, plans_from_settings
from tests.api.conftest import problem
from tests.api.test_events import sse_events
from tests.api.test_plots import ORIGIN, png_size
from tests.conftest import LONG_SPEC, KeysServer, Server, Worker, keys_env, serve_api, wait_for

# An ordinary study's plots; a remedy study adds `remedies` (tests/core/test_remedy_plot.py).
STUDY_PLOT_NAMES = [name for name in STUDY_PLOTS.names if name != REMEDIES.name]

STUDY_SECONDS = 240.0  # a fresh worker loads TensorFlow and compiles each architecture
# Four short children: two activations, two seeds, 3 epochs on 200 points.
SMALL: dict[str, Any] = {
    "name": "small",
    "base": {"seed": 5, "dataset": {"n_samples": 200}, "training": {"epochs": 3}},
    "axes": {"model.activation": ["tanh", "relu"]},
    "seeds": 2,
}
# Left queued: no test worker consumes the gpu queue.
UNTRAINED: dict[str, Any] = {
    "base": {"seed": 1, "device": "gpu", "training": {"epochs": 2}},
    "axes": {"model.activation": ["tanh", "relu"]},
}
UNKNOWN = "01ARZ3NDEKTSV4RRFFQ69G5FAV"

pytestmark = pytest.mark.usefixtures("worker_process")


def post_study(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/studies", json=body)
    assert response.status_code == 202, response.text
    study: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/v1/studies/{study['id']}"
    return study


def wait_for_study(client: httpx.Client, study_id: str, *statuses: str) -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    def reached() -> bool:
        seen[:] = [client.get(f"/v1/studies/{study_id}").json()]
        return seen[0]["status"] in statuses

    wait_for(reached, timeout=STUDY_SECONDS, what=f"study {study_id} to be {statuses}")
    return seen[0]


@pytest.fixture(scope="module")
def small_study(api_server: Server, worker_process: Worker) -> dict[str, Any]:
    """The small study, trained to the end."""
    with api_server.client() as client:
        study = post_study(client, SMALL)
        return wait_for_study(client, study["id"], "succeeded", "failed", "cancelled")


def test_a_small_study_completes_with_ordinary_children(
    client: httpx.Client, small_study: dict[str, Any]
) -> None:
    assert small_study["status"] == "succeeded", small_study
    progress = small_study["progress"]
    assert (progress["children"], progress["succeeded"], progress["finished"]) == (4, 4, 4)
    assert small_study["finished_at"] >= small_study["started_at"]
    assert [config["label"] for config in small_study["configs"]] == [
        "activation=tanh",
        "activation=relu",
    ]
    children = [child for config in small_study["configs"] for child in config["children"]]
    for child in children:
        record = client.get(f"/v1/experiments/{child['id']}").json()
        assert record["status"] == "succeeded" and child["status"] == "succeeded"
        assert record["progress"] == {"epoch": 3, "epochs": 3}
    seeds = [client.get(f"/v1/experiments/{c['id']}").json()["spec"]["seed"] for c in children]
    assert seeds == [5, 6, 5, 6]


def test_children_that_share_a_graph_train_side_by_side(
    client: httpx.Client, small_study: dict[str, Any]
) -> None:
    # Two seeds of two activations: the graph applies each member's own activation, so
    # the four children are one group, trained side by side on one worker.
    hosts = set()
    for config in small_study["configs"]:
        for child in config["children"]:
            result = client.get(f"/v1/experiments/{child['id']}/result").json()
            assert result["timing"]["members"] == 4, child
            assert result["layers"][0]["activation"] == config["values"]["model.activation"]
            hosts.add(client.get(f"/v1/experiments/{child['id']}").json()["worker"]["hostname"])
    assert len(hosts) == 1


def test_a_deployment_can_train_every_child_alone(
    service_env: dict[str, str], worker_process: Worker
) -> None:
    env = {**service_env, "GRADWATCH_ENSEMBLE_MEMBERS": "1"}
    with serve_api(env) as server, server.client() as client:
        study = post_study(client, {**SMALL, "name": "alone"})
        ended = wait_for_study(client, study["id"], "succeeded", "failed", "cancelled")
        assert ended["status"] == "succeeded"
        for config in ended["configs"]:
            for child in config["children"]:
                result = client.get(f"/v1/experiments/{child['id']}/result").json()
                assert result["timing"]["members"] == 1, child


def test_the_study_ends_with_its_plots_drawn_by_the_worker(
    small_study: dict[str, Any], settings: Settings, redis_client: redis.Redis
) -> None:
    # No plot has been asked for yet: the worker drew them, and sealed the study with them.
    studies = StudyStore(redis_client, plans_from_settings(settings))
    for name in STUDY_PLOT_NAMES:
        assert studies.get_study_plot(small_study["id"], field=name, body=False).etag, name
    assert studies.get_study_series(small_study["id"]) is not None


def test_the_summary_has_one_row_per_config_with_mean_and_spread(
    client: httpx.Client, small_study: dict[str, Any]
) -> None:
    response = client.get(f"/v1/studies/{small_study['id']}/summary")
    assert response.status_code == 200
    assert "immutable" in response.headers["cache-control"]
    summary = response.json()
    assert summary["axes"] == ["model.activation"] and summary["seeds"] == 2
    assert [row["values"]["model.activation"] for row in summary["rows"]] == ["tanh", "relu"]
    for row in summary["rows"]:
        assert row["succeeded"] == 2 and row["accuracy"]["n"] == 2
        accuracy = row["accuracy"]
        assert accuracy["min"] <= accuracy["mean"] <= accuracy["max"]
        assert accuracy["std"] is not None and row["loss"]["mean"] > 0
    assert summary["rows"] == small_study["summary"]["rows"]


def test_the_summary_csv_parses(client: httpx.Client, small_study: dict[str, Any]) -> None:
    response = client.get(f"/v1/studies/{small_study['id']}/summary.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["model.activation"] for row in rows] == ["tanh", "relu"]
    rows_json = client.get(f"/v1/studies/{small_study['id']}/summary").json()["rows"]
    for row, expected in zip(rows, rows_json, strict=True):
        assert float(row["accuracy_mean"]) == pytest.approx(expected["accuracy"]["mean"])
        assert int(row["seeds"]) == 2


def test_every_study_plot_is_a_png_with_etag_and_cors(
    client: httpx.Client, small_study: dict[str, Any]
) -> None:
    study_id = small_study["id"]
    assert small_study["plots"] == list(STUDY_PLOT_NAMES)
    plots = client.get(f"/v1/studies/{study_id}/plots").json()["items"]
    assert [plot["name"] for plot in plots] == list(STUDY_PLOT_NAMES)
    for plot in plots:
        response = client.get(plot["url"], headers={"Origin": ORIGIN})
        assert response.status_code == 200, (plot["name"], response.text)
        assert response.headers["content-type"] == "image/png"
        assert png_size(response.content) == (900, 600)
        assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
        assert "immutable" in response.headers["cache-control"]
        etag = response.headers["etag"]
        again = client.get(plot["url"], headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.headers["etag"] == etag


def test_a_study_plot_renders_at_the_asked_size(
    client: httpx.Client, small_study: dict[str, Any]
) -> None:
    url = f"/v1/studies/{small_study['id']}/plots/curves.png"
    response = client.get(url, params={"width": 480, "height": 320, "dpi": 80})
    assert response.status_code == 200
    assert png_size(response.content) == (480, 320)
    cached = client.get(url, params={"width": 480, "height": 320, "dpi": 80})
    assert cached.content == response.content and cached.headers["etag"] == response.headers["etag"]
    problem(client.get(url, params={"width": 5}), 422)
    problem(client.get(f"/v1/studies/{small_study['id']}/plots/weights.png"), 404)


def test_the_event_stream_tells_each_child_then_ends_and_resumes(
    client: httpx.Client, small_study: dict[str, Any]
) -> None:
    url = f"/v1/studies/{small_study['id']}/events"
    with client.stream("GET", url) as response:
        events = list(sse_events(response))
    assert events[0].type == "state" and events[0].data == {"status": "queued"}
    assert events[-1].type == "state" and events[-1].data["status"] == "succeeded"
    finished = [e for e in events if e.type == "child" and e.data["status"] == "succeeded"]
    assert sorted(e.data["index"] for e in finished) == [0, 1, 2, 3]
    assert [e.data["finished"] for e in finished] == [1, 2, 3, 4]
    with client.stream("GET", url, headers={"Last-Event-ID": events[1].id or ""}) as response:
        resumed = list(sse_events(response))
    assert [e.id for e in resumed] == [e.id for e in events[2:]]
    ended = client.get(url, headers={"Last-Event-ID": events[-1].id or ""})
    assert ended.status_code == 204


def test_cancel_stops_the_children(client: httpx.Client, api_server: Server) -> None:
    body = {
        "base": {**LONG_SPEC, "seed": 3},
        "axes": {"model.activation": ["tanh", "relu"]},
    }
    study = post_study(client, body)
    first = study["configs"][0]["children"][0]["id"]

    def training() -> bool:
        record = client.get(f"/v1/experiments/{first}").json()
        assert record["status"] in ("queued", "running"), record
        return record["status"] == "running" and record["progress"]["epoch"] >= 1

    wait_for(training, timeout=STUDY_SECONDS, what="the study's first child to train")
    response = client.post(f"/v1/studies/{study['id']}/cancel")
    assert response.status_code in (200, 202), response.text
    assert response.json()["cancel_requested"] is True
    ended = wait_for_study(client, study["id"], "succeeded", "failed", "cancelled")
    assert ended["status"] == "cancelled"
    statuses = [c["status"] for config in ended["configs"] for c in config["children"]]
    assert statuses == ["cancelled", "cancelled"]
    assert ended["progress"]["epoch"] < 1000
    again = client.post(f"/v1/studies/{study['id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_an_unfinished_study_has_no_summary_and_delete_takes_its_children(
    client: httpx.Client,
) -> None:
    study = post_study(client, UNTRAINED)
    assert study["status"] == "queued" and study["progress"]["queued"] == 2
    body = problem(client.get(f"/v1/studies/{study['id']}/summary"), 409)
    assert body["study_status"] == "queued"
    problem(client.get(f"/v1/studies/{study['id']}/summary.csv"), 409)
    problem(client.get(f"/v1/studies/{study['id']}/plots"), 409)
    problem(client.get(f"/v1/studies/{study['id']}/plots/curves.png"), 409)
    children = [c["id"] for config in study["configs"] for c in config["children"]]
    assert client.delete(f"/v1/studies/{study['id']}").status_code == 204
    problem(client.get(f"/v1/studies/{study['id']}"), 404)
    for child in children:
        problem(client.get(f"/v1/experiments/{child}"), 404)


def test_studies_list_newest_first_with_a_cursor(client: httpx.Client) -> None:
    made = [post_study(client, UNTRAINED)["id"] for _ in range(3)]
    page = client.get("/v1/studies", params={"limit": 2}).json()
    assert [item["id"] for item in page["items"]] == made[::-1][:2]
    rest = client.get("/v1/studies", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert rest["items"][0]["id"] == made[0]
    problem(client.get("/v1/studies", params={"cursor": "nope"}), 422)
    for study_id in made:
        assert client.delete(f"/v1/studies/{study_id}").status_code == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"axes": {"model.activ": ["relu"]}}, "axes.model.activ"),
        ({"axes": {"model.activation": ["relu", "bogus"]}}, "axes.model.activation[1]"),
        (
            {"axes": {"training.epochs": [*range(1, 10)], "training.batch_size": [*range(8, 16)]}},
            "axes",
        ),
        ({"axes": {"model.activation": ["relu", "tanh"]}, "seeds": 40}, "seeds"),
        ({"axes": {"training.epochs": [*range(1, 70)]}}, "axes.training.epochs"),
        ({"base": {"training": {"epochs": 0}}}, "base.training.epochs"),
        ({"preset": "nope"}, "preset"),
        ({"axes": {"model.activation": ["relu"]}, "extra": 1}, "extra"),
    ],
)
def test_a_bad_study_is_a_422_naming_the_field(
    client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    document = problem(client.post("/v1/studies", json=body), 422)
    assert document["type"] == "urn:gradwatch:problem:invalid-study"
    assert document["errors"][0]["field"] == field, document
    assert field in document["detail"]


def test_a_study_sent_as_a_form_is_a_415(client: httpx.Client) -> None:
    response = client.post(
        "/v1/studies",
        content=b'{"preset": "tutorial"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    problem(response, 415)


STUDY_ROUTES = [
    ("GET", "/v1/studies/{id}"),
    ("GET", "/v1/studies/{id}/summary"),
    ("GET", "/v1/studies/{id}/summary.csv"),
    ("GET", "/v1/studies/{id}/events"),
    ("GET", "/v1/studies/{id}/plots"),
    ("GET", "/v1/studies/{id}/plots/curves.png"),
    ("POST", "/v1/studies/{id}/cancel"),
    ("DELETE", "/v1/studies/{id}"),
]


@pytest.mark.parametrize(("method", "path"), STUDY_ROUTES)
@pytest.mark.parametrize("study_id", [UNKNOWN, "not-an-id"])
def test_an_unknown_study_is_a_404(
    client: httpx.Client, method: str, path: str, study_id: str
) -> None:
    response = client.request(method, path.format(id=study_id))
    assert problem(response, 404)["type"] == "urn:gradwatch:problem:not-found"


def test_presets_list_the_studies(client: httpx.Client) -> None:
    studies = client.get("/v1/presets").json()["studies"]
    assert [study["name"] for study in studies] == [
        "tutorial",
        "initializers",
        "fixes",
        "recurrent-cells",
        "conv-depth",
    ]
    tutorial = studies[0]["study"]
    assert tutorial["axes"] == {"model.activation": ["sigmoid", "tanh", "relu"]}


# ------------------------------------------------------------------------ owners


def test_a_study_and_its_children_belong_to_the_key_owner(keys_server: KeysServer) -> None:
    with keys_server.client_of("alice") as alice, keys_server.client_of("bob") as bob:
        study = post_study(alice, UNTRAINED)
        children = [c["id"] for config in study["configs"] for c in config["children"]]
        assert alice.get(f"/v1/studies/{study['id']}").status_code == 200
        for child in children:
            assert alice.get(f"/v1/experiments/{child}").status_code == 200
            problem(bob.get(f"/v1/experiments/{child}"), 404)
        for method, path in STUDY_ROUTES:
            problem(bob.request(method, path.format(id=study["id"])), 404)
        assert study["id"] not in [s["id"] for s in bob.get("/v1/studies").json()["items"]]
        assert study["id"] in [s["id"] for s in alice.get("/v1/studies").json()["items"]]
        with keys_server.client() as anybody:
            problem(anybody.get(f"/v1/studies/{study['id']}"), 401)
            problem(anybody.post("/v1/studies", json=UNTRAINED), 401)
        assert alice.delete(f"/v1/studies/{study['id']}").status_code == 204


def test_a_study_past_the_active_jobs_limit_is_a_429_and_leaves_nothing(
    service_env: dict[str, str], redis_client: redis.Redis
) -> None:
    env, keys = keys_env(service_env, submissions_per_minute=100, max_active_jobs=3)
    with (
        serve_api(env) as server,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {keys['carol']}"}, timeout=30.0
        ) as carol,
    ):
        body = {**UNTRAINED, "seeds": 2}  # 4 experiments
        document = problem(carol.post("/v1/studies", json=body), 429)
        assert document["limit"] == "max_active_jobs" and document["limit_value"] == 3
        assert carol.get("/v1/experiments").json()["items"] == []
        assert carol.get("/v1/studies").json()["items"] == []
        assert carol.post("/v1/studies", json=UNTRAINED).status_code == 202  # 2 fit
