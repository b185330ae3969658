"""`gradwatch datasets upload|list|show|delete` against a running service with API keys.

Each test is dave's, an owner of his own and new to this session's Redis (KeysServer),
and leaves none of his datasets behind.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from core.cli.remote import Exit
from tests.conftest import KeysServer
from tests.core.cli.test_cli import gradwatch

POINTS = b"x1,x2,side\n" + b"".join(
    f"{i % 7 / 7:.3f},{i % 5 / 5:.3f},{'ab'[i % 2]}\n".encode() for i in range(40)
)
# The same points with a number to fit, 0 or 1, in a column named label.
TARGETS = POINTS.replace(b"side", b"label").replace(b",a\n", b",0\n").replace(b",b\n", b",1\n")


@pytest.fixture
def dave(keys_server: KeysServer) -> Iterator[httpx.Client]:
    with keys_server.client_of("dave") as client:
        yield client
        for item in client.get("/v1/datasets", params={"limit": 200}).json()["items"]:
            client.delete(f"/v1/datasets/{item['id']}")


def datasets(
    keys_server: KeysServer, *args: str, stdin: str | None = None, who: str = "dave"
) -> subprocess.CompletedProcess[str]:
    """`gradwatch datasets ARGS` with `who`'s key."""
    return gradwatch(
        "datasets", *args, "--server", keys_server.url, "--key", keys_server.keys[who],
        stdin=stdin,
    )  # fmt: skip


def test_upload_list_show_and_delete(
    tmp_path: Path, keys_server: KeysServer, dave: httpx.Client
) -> None:
    path = tmp_path / "points.csv"
    path.write_bytes(POINTS)
    uploaded = datasets(keys_server, "upload", str(path), "--label", "side")
    assert uploaded.returncode == Exit.OK, uploaded.stderr
    first = uploaded.stdout.strip()
    assert len(first) == 26  # the id alone, for $(...)
    assert "points.csv: 40 samples of 2; classification, 2 classes: a, b" in uploaded.stderr
    assert dave.get(f"/v1/datasets/{first}").json()["label"] == "side"

    # From standard input, a regression, named, and its whole record as JSON.
    regression = datasets(
        keys_server, "upload", "-", "--task", "regression", "--name", "prices", "--json",
        stdin=TARGETS.decode(),
    )  # fmt: skip
    assert regression.returncode == Exit.OK, regression.stderr
    record = json.loads(regression.stdout)
    assert (record["name"], record["task"], record["label"]) == ("prices", "regression", "label")
    assert record["classes"] is None and record["target_range"] == [0.0, 1.0]
    assert record == dave.get(f"/v1/datasets/{record['id']}").json()
    again = datasets(keys_server, "upload", str(path), "--label", "side")
    assert again.stdout.strip() == first  # the same upload is the same dataset

    listed = datasets(keys_server, "list")
    assert listed.returncode == Exit.OK, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [record["id"], first]  # newest first
    assert lines[0].endswith("prices  40 samples of 2  regression, targets 0 to 1")
    as_json = json.loads(datasets(keys_server, "list", "--json").stdout)
    assert as_json == dave.get("/v1/datasets").json()["items"]

    shown = datasets(keys_server, "show", record["id"])
    assert shown.returncode == Exit.OK, shown.stderr
    fields = dict(line.split(":", 1) for line in shown.stdout.splitlines())
    assert fields["task"].strip() == "regression, targets 0 to 1"
    assert fields["format"].strip() == "csv, label column 'label'"
    assert fields["sha256"].strip() == record["content_hash"]
    assert json.loads(datasets(keys_server, "show", first, "--json").stdout)["classes"] == [
        "a",
        "b",
    ]

    deleted = datasets(keys_server, "delete", first)
    assert deleted.returncode == Exit.OK, deleted.stderr
    assert f"deleted dataset {first}" in deleted.stderr
    gone = datasets(keys_server, "show", first)
    assert gone.returncode == Exit.NOT_FOUND and "404" in gone.stderr
    assert [item["id"] for item in json.loads(datasets(keys_server, "list", "--json").stdout)] == [
        record["id"]
    ]


def npz(**arrays: Any) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


@pytest.mark.parametrize(
    ("content", "args", "code", "says"),
    [
        (b"x1,x2,label\n1,2,a\n3,four,b\n", [], Exit.REFUSED, "row 3, column 'x2':"),
        (POINTS, [], Exit.REFUSED, "row 1:"),  # no column named label
        (b"x1,x2,label\n1,2,a\n3,4,a\n5,6,a\n7,8,a\n", [], Exit.REFUSED, "column 'label':"),
        (b"\x7fELF\x02\x01\x01\x00\xff\xfe", [], Exit.REFUSED, "415"),
        (npz(x=np.zeros((4, 2)), y=np.zeros(5)), [], Exit.REFUSED, "array y:"),
        (POINTS, ["--task", "guess"], Exit.USAGE, "invalid choice: 'guess'"),
    ],
    ids=["non-numeric", "no-label", "one-class", "neither", "lengths", "task"],
)
def test_a_bad_file_is_refused_naming_where(
    tmp_path: Path,
    keys_server: KeysServer,
    dave: httpx.Client,
    content: bytes,
    args: list[str],
    code: Exit,
    says: str,
) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    done = datasets(keys_server, "upload", str(path), *args)
    assert done.returncode == code, done.stderr
    assert says in done.stderr
    assert done.stdout == ""
    assert dave.get("/v1/datasets").json()["items"] == []


def test_what_went_wrong_has_the_exit_status_of_the_other_commands(
    tmp_path: Path, keys_server: KeysServer, dave: httpx.Client
) -> None:
    missing = datasets(keys_server, "upload", str(tmp_path / "nowhere.csv"))
    assert missing.returncode == Exit.USAGE and "nowhere.csv" in missing.stderr
    keyless = gradwatch("datasets", "list", "--server", keys_server.url)
    assert keyless.returncode == Exit.UNAUTHORIZED, keyless.stderr
    unknown = datasets(keys_server, "delete", "01JD8X3Q7R5M2N4P6T8V0W2Y4Z")
    assert unknown.returncode == Exit.NOT_FOUND and "404" in unknown.stderr

    # Another owner's dataset is not there for bob.
    mine = datasets(keys_server, "upload", "-", "--label", "side", stdin=POINTS.decode())
    theirs = datasets(keys_server, "show", mine.stdout.strip(), who="bob")
    assert theirs.returncode == Exit.NOT_FOUND, theirs.stderr
    refused = datasets(keys_server, "delete", mine.stdout.strip(), who="bob")
    assert refused.returncode == Exit.NOT_FOUND

    # In use by a queued job (the GPU queue, which no test worker consumes): a 409.
    spec = {"device": "gpu", "dataset": {"kind": "uploaded", "id": mine.stdout.strip()}}
    job = dave.post("/v1/experiments", json=spec)
    assert job.status_code == 202, job.text
    in_use = datasets(keys_server, "delete", mine.stdout.strip())
    assert in_use.returncode == Exit.REFUSED, in_use.stderr
    assert "409" in in_use.stderr and job.json()["id"] in in_use.stderr
    assert dave.post(f"/v1/experiments/{job.json()['id']}/cancel").status_code == 200
    assert datasets(keys_server, "delete", mine.stdout.strip()).returncode == Exit.OK
