"""Datasets over HTTP: uploads as a form or raw, the bad-file table, owners, limits."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from tests.api.conftest import problem
from tests.api.ui.prefixed import PREFIX
from tests.conftest import KeysServer, keys_env, serve_api

POINTS = b"x1,x2,label\n" + b"".join(
    f"{i % 7 / 7:.3f},{i % 5 / 5:.3f},{'ab'[i % 2]}\n".encode() for i in range(40)
)


def npz(**arrays: Any) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


@pytest.fixture
def alice(keys_server: KeysServer) -> Iterator[httpx.Client]:
    with keys_server.client_of("alice") as client:
        yield client
        _delete_all(client)


@pytest.fixture
def bob(keys_server: KeysServer) -> Iterator[httpx.Client]:
    with keys_server.client_of("bob") as client:
        yield client
        _delete_all(client)


def _delete_all(client: httpx.Client) -> None:
    for item in client.get("/v1/datasets", params={"limit": 200}).json()["items"]:
        client.delete(f"/v1/datasets/{item['id']}")


def test_a_csv_form_upload_answers_its_shape_and_classes(alice: httpx.Client) -> None:
    response = alice.post("/v1/datasets", files={"file": ("points.csv", POINTS, "text/csv")})
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/datasets/{body['id']}"
    assert body["name"] == "points.csv" and body["format"] == "csv"
    assert body["samples"] == 40 and body["sample_shape"] == [2] and body["features"] == 2
    assert body["classes"] == ["a", "b"] and body["target_range"] is None
    assert body["task"] == "classification" and body["label"] == "label"
    assert body["size"] == len(POINTS) and body["stored_size"] > 0
    assert len(body["content_hash"]) == 64
    assert alice.get(f"/v1/datasets/{body['id']}").json() == body


def test_the_same_upload_is_the_same_dataset(alice: httpx.Client) -> None:
    first = alice.post("/v1/datasets", content=POINTS, headers={"Content-Type": "text/csv"})
    again = alice.post("/v1/datasets", files={"file": ("other.csv", POINTS)})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    regression = alice.post(
        "/v1/datasets",
        params={"label": "x1", "task": "regression"},
        content=POINTS.replace(b",a\n", b",0\n").replace(b",b\n", b",1\n"),
        headers={"Content-Type": "text/csv"},
    )
    assert regression.status_code == 201, regression.text
    assert regression.json()["target_range"] == [0.0, 0.857]
    assert len(alice.get("/v1/datasets").json()["items"]) == 2


def test_an_npz_of_sequences(alice: httpx.Client) -> None:
    x = np.random.default_rng(0).normal(size=(30, 6, 3)).astype(np.float32)
    body = npz(x=x, y=np.arange(30) % 3)
    response = alice.post(
        "/v1/datasets",
        params={"name": "seqs"},
        content=body,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    shown = response.json()
    assert shown["format"] == "npz" and shown["label"] is None and shown["name"] == "seqs"
    assert shown["sample_shape"] == [6, 3] and shown["classes"] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"x1,x2,label\n1,2,a\n3,a\n", 422, "row 3"),
        (b"x1,x2,label\n1,2,a\n3,four,b\n", 422, "row 3, column 'x2'"),
        (b"x1,x2,label\n1,2,a\n3,nan,b\n", 422, "row 3, column 'x2'"),
        (b"x1,x2,y\n1,2,a\n3,4,b\n", 422, "row 1"),
        (b"x1,x2,label\n1,2,a\n3,4,a\n5,6,a\n7,8,a\n", 422, "column 'label'"),
        (b"\x7fELF\x02\x01\x01\x00\xff\xfe", 415, "file"),
        (npz(x=np.zeros((4, 2)), y=np.zeros(5)), 422, "array y"),
        (npz(x=np.zeros((4, 2)), y=np.array([None] * 4, dtype=object)), 422, "array y"),
    ],
    ids=[
        "ragged",
        "non-numeric",
        "nan",
        "no-label",
        "one-class",
        "neither",
        "lengths",
        "pickle",
    ],
)
def test_a_bad_file_is_refused_naming_where_and_kept_nowhere(
    alice: httpx.Client, body: bytes, status: int, field: str
) -> None:
    response = alice.post(
        "/v1/datasets", content=body, headers={"Content-Type": "application/octet-stream"}
    )
    refused = problem(response, status)
    assert refused["errors"][0]["field"] == field, refused
    assert field in refused["detail"]
    assert alice.get("/v1/datasets").json()["items"] == []


def test_a_body_that_is_not_an_upload_is_refused(alice: httpx.Client) -> None:
    sent = alice.post("/v1/datasets", json={"x": [1, 2]})
    assert problem(sent, 415)["errors"][0]["field"] == "Content-Type"
    empty_form = alice.post("/v1/datasets", files={"other": ("a.csv", POINTS)})
    assert problem(empty_form, 400)["errors"][0]["field"] == "file"


def test_another_owners_dataset_is_not_found(alice: httpx.Client, bob: httpx.Client) -> None:
    mine = alice.post("/v1/datasets", files={"file": ("p.csv", POINTS)}).json()["id"]
    assert problem(bob.get(f"/v1/datasets/{mine}"), 404)["detail"]
    problem(bob.delete(f"/v1/datasets/{mine}"), 404)
    assert bob.get("/v1/datasets").json()["items"] == []
    # Bob's copy of the same bytes is his own.
    theirs = bob.post("/v1/datasets", files={"file": ("p.csv", POINTS)})
    assert theirs.status_code == 201 and theirs.json()["id"] != mine
    assert alice.delete(f"/v1/datasets/{mine}").status_code == 204
    problem(alice.get(f"/v1/datasets/{mine}"), 404)


def test_listing_pages_newest_first(alice: httpx.Client) -> None:
    ids = [
        alice.post("/v1/datasets", files={"file": (f"{n}.csv", POINTS + b"0,0,a\n" * n)}).json()[
            "id"
        ]
        for n in (1, 2, 3)
    ]
    first = alice.get("/v1/datasets", params={"limit": 2}).json()
    assert [item["id"] for item in first["items"]] == ids[:0:-1]
    rest = alice.get("/v1/datasets", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [item["id"] for item in rest["items"]] == ids[:1] and rest["next_cursor"] is None
    problem(alice.get("/v1/datasets", params={"cursor": "nonsense"}), 422)


# ----------------------------------------------------------------------------- limits


@pytest.fixture(scope="module")
def small(service_env: dict[str, str]) -> Iterator[KeysServer]:
    """An API whose owners keep 2 datasets of 1 MB and 50 samples at most."""
    env, keys = keys_env(
        service_env, datasets_per_owner=2, dataset_max_megabytes=1, dataset_max_samples=50
    )
    with serve_api(env) as server:
        yield KeysServer(server.url, server.process, keys, env["GRADWATCH_SHARE_SECRET"])


def test_an_owner_keeps_at_most_its_limit_of_datasets(small: KeysServer) -> None:
    with small.client_of("carol") as carol, small.client_of("dave") as dave:
        for n in (1, 2):
            sent = carol.post("/v1/datasets", files={"file": ("a", POINTS + b"0,0,a\n" * n)})
            assert sent.status_code == 201
        third = problem(carol.post("/v1/datasets", files={"file": ("c", POINTS)}), 409)
        assert "GRADWATCH_DATASETS_PER_OWNER (2)" in third["detail"]
        assert dave.post("/v1/datasets", files={"file": ("a", POINTS)}).status_code == 201


def test_too_many_samples_name_the_limit(small: KeysServer) -> None:
    rows = POINTS + POINTS.split(b"\n", 1)[1]  # 80 rows
    with small.client_of("carol") as carol:
        refused = problem(carol.post("/v1/datasets", files={"file": ("big", rows)}), 422)
    assert refused["errors"][0]["field"] == "row 52" and "limit of 50 samples" in refused["detail"]


def test_an_upload_over_its_cap_is_413_declared_or_streamed(small: KeysServer) -> None:
    with small.client_of("carol") as carol:
        declared = carol.post(
            "/v1/datasets", content=b"0" * (1024 * 1024 + 1), headers={"Content-Type": "text/csv"}
        )
        assert "1 MB" in problem(declared, 413)["detail"]
        # Far above the 64 KiB of a spec, within its own cap: read and parsed.
        sized = b"a,label\n" + b"1,1\n2,2\n" * 20_000
        sent = carol.post("/v1/datasets", content=sized, headers={"Content-Type": "text/csv"})
        assert "limit of 50 samples" in problem(sent, 422)["detail"]


def test_a_streamed_upload_is_answered_413_before_it_ends(small: KeysServer) -> None:
    """Chunks past the cap, then silence: the 413 comes without the rest of the body."""
    url = urlsplit(small.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as connection:
        connection.sendall(
            b"POST /v1/datasets HTTP/1.1\r\nHost: test\r\nContent-Type: text/csv\r\n"
            + f"Authorization: Bearer {small.keys['carol']}\r\n".encode()
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"1" * 65536
        for _ in range(17):  # 1.06 MB of a body that would go on
            connection.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        reply = connection.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"application/problem+json" in reply


def test_behind_a_path_prefix_an_upload_keeps_its_own_cap(service_env: dict[str, str]) -> None:
    """A proxy's prefix is in the path the app sees: the upload's cap is still found."""
    rows = b"x1,x2,label\n" + b"0.1250,0.5000,a\n0.7500,0.2500,b\n" * 2_500  # 80 KB
    assert len(rows) > 64 * 1024
    env, keys = keys_env(service_env)
    with serve_api(env, "tests.api.ui.prefixed:app", PREFIX) as server:
        sent = httpx.post(
            f"{server.url}{PREFIX}/v1/datasets",
            content=rows,
            headers={"Content-Type": "text/csv", "Authorization": f"Bearer {keys['carol']}"},
        )
    assert sent.status_code == 201, sent.text


# ------------------------------------------------------------------- used in specs

# Queued on the GPU queue, which no test worker consumes: they stay queued.
QUEUED: dict[str, Any] = {"seed": 1, "device": "gpu", "training": {"epochs": 2}}


def uploaded_spec(dataset_id: str, **fields: Any) -> dict[str, Any]:
    return {**QUEUED, "dataset": {"kind": "uploaded", "id": dataset_id, **fields}}


def test_a_spec_names_an_uploaded_dataset_by_id(alice: httpx.Client, bob: httpx.Client) -> None:
    mine = alice.post("/v1/datasets", files={"file": ("p.csv", POINTS)}).json()["id"]
    faked = {"name": "x", "samples": 400, "sample_shape": [1], "classes": 2}
    job = alice.post("/v1/experiments", json=uploaded_spec(mine, data=faked))
    assert job.status_code == 202, job.text
    # What the service read from the upload, whatever the client said.
    assert job.json()["spec"]["dataset"]["data"] == {
        "name": "p.csv",
        "samples": 40,
        "sample_shape": [2],
        "classes": 2,
    }
    noisy = problem(alice.post("/v1/experiments", json=uploaded_spec(mine, noise=0.2)), 422)
    assert noisy["errors"][0]["field"] == "dataset.noise"
    unknown = problem(alice.post("/v1/experiments", json=uploaded_spec("0" * 26)), 422)
    assert unknown["errors"][0]["field"] == "dataset.id"
    theirs = problem(bob.post("/v1/experiments", json=uploaded_spec(mine)), 422)
    assert (
        theirs["errors"][0] == unknown["errors"][0] | {"reason": theirs["errors"][0]["reason"]}
        and mine in theirs["detail"]
    )
    too_big = problem(
        alice.post("/v1/experiments", json={**uploaded_spec(mine), "training": {"batch_size": 64}}),
        422,
    )
    assert too_big["errors"][0]["field"] == "training.batch_size"
    alice.post(f"/v1/experiments/{job.json()['id']}/cancel")


def test_a_dataset_in_use_is_not_deleted(alice: httpx.Client) -> None:
    mine = alice.post("/v1/datasets", files={"file": ("p.csv", POINTS)}).json()["id"]
    job = alice.post("/v1/experiments", json=uploaded_spec(mine)).json()["id"]
    refused = problem(alice.delete(f"/v1/datasets/{mine}"), 409)
    assert refused["jobs"] == [job] and job in refused["detail"]
    assert alice.post(f"/v1/experiments/{job}/cancel").status_code == 200
    assert alice.delete(f"/v1/datasets/{mine}").status_code == 204
    assert problem(alice.post("/v1/experiments", json=uploaded_spec(mine)), 422)


def test_a_study_compares_uploaded_datasets_along_an_axis(alice: httpx.Client) -> None:
    first = alice.post("/v1/datasets", files={"file": ("one.csv", POINTS)}).json()["id"]
    second = alice.post("/v1/datasets", files={"file": ("two.csv", POINTS + b"1,1,a\n")})
    second_id = second.json()["id"]
    body = {
        "base": {
            **QUEUED,
            "dataset": {"kind": "uploaded", "id": first},
            "training": {"epochs": 2, "batch_size": 8},
        },
        "axes": {
            "dataset": [
                {"kind": "uploaded", "id": first},
                {"kind": "uploaded", "id": second_id, "validation_split": 0.25},
                {"kind": "circles", "n_samples": 40},
            ]
        },
    }
    study = alice.post("/v1/studies", json=body)
    assert study.status_code == 202, study.text
    shown = study.json()
    assert [config["label"] for config in shown["configs"]] == [
        "dataset=one.csv",
        "dataset=two.csv",
        "dataset=circles(n_samples=40)",
    ]
    problem(alice.delete(f"/v1/datasets/{second_id}"), 409)
    unknown = {**body, "axes": {"dataset": [{"kind": "uploaded", "id": "0" * 26}]}}
    refused = problem(alice.post("/v1/studies", json=unknown), 422)
    assert refused["errors"][0]["field"] == "axes.dataset[0].id"
    alice.post(f"/v1/studies/{shown['id']}/cancel")
    assert alice.delete(f"/v1/datasets/{second_id}").status_code == 204
