"""`gradwatch submit`, `study`, `status` and `download` against a running service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from core.cli.remote import Exit, _report_study, _write
from core.client import Study
from tests.api.conftest import UNTRAINED
from tests.conftest import KeysServer, Server, Worker, free_port
from tests.core.cli.test_cli import REGRESSION, gradwatch

SPEC: dict[str, Any] = {"seed": 8, "training": {"epochs": 4}, "capture": {"raw": True}}
STUDY: dict[str, Any] = {
    "base": {"seed": 3, "dataset": {"n_samples": 200}, "training": {"epochs": 3}},
    "axes": {"model.activation": ["tanh", "relu"]},
    "seeds": 1,
}


def write(tmp_path: Path, body: dict[str, Any]) -> str:
    path = tmp_path / "body.json"
    path.write_text(json.dumps(body))
    return str(path)


def test_submit_waits_with_a_progress_bar_and_writes_what_run_writes(
    tmp_path: Path, api_server: Server, worker_process: Worker
) -> None:
    out = tmp_path / "out"
    done = gradwatch("submit", write(tmp_path, SPEC), "--server", api_server.url, "--out", str(out))
    assert done.returncode == Exit.OK, done.stderr
    job_id = done.stdout.strip()
    assert len(job_id) == 26
    assert "4/4" in done.stderr and "verdict: " in done.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["seed"] == 8 and result["history"]["epoch"] == [1, 2, 3, 4]
    assert {"gradient_flow", "weights"} <= {path.stem for path in out.glob("*.png")}
    with np.load(out / "arrays.npz") as arrays:
        assert arrays["dataset/x"].shape[1] == 2

    status = gradwatch("status", job_id, "--server", api_server.url)
    assert status.returncode == Exit.OK
    assert status.stdout.startswith(f"experiment {job_id} succeeded (epoch 4/4)")
    again = tmp_path / "again"
    download = gradwatch("download", job_id, "--server", api_server.url, "--out", str(again))
    assert download.returncode == Exit.OK, download.stderr
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in out.iterdir())


def test_a_waited_regression_reports_its_loss_against_its_baseline(
    tmp_path: Path, api_server: Server, worker_process: Worker
) -> None:
    done = gradwatch("submit", write(tmp_path, REGRESSION), "--server", api_server.url, "--wait")
    assert done.returncode == Exit.OK, done.stderr
    status = gradwatch("status", done.stdout.strip(), "--server", api_server.url, "--json")
    summary = json.loads(status.stdout)["summary"]
    loss, baseline = summary["loss"], summary["baseline_loss"]
    assert summary["accuracy"] is None and baseline is not None
    said = f"succeeded: loss {loss:.4f}, baseline loss {baseline:.4f} (loss/baseline "
    assert said in done.stderr and "accuracy" not in done.stderr


def test_submit_without_wait_prints_the_id_and_status_says_unfinished(
    tmp_path: Path, api_server: Server
) -> None:
    done = gradwatch("submit", "-", "--server", api_server.url, stdin=json.dumps(UNTRAINED))
    assert done.returncode == Exit.OK, done.stderr
    job_id = done.stdout.strip()
    status = gradwatch("status", job_id, "--server", api_server.url, "--json")
    assert status.returncode == Exit.UNFINISHED
    assert json.loads(status.stdout)["status"] == "queued"
    download = gradwatch("download", job_id, "--server", api_server.url, "--out", str(tmp_path))
    assert download.returncode == Exit.REFUSED
    assert "409" in download.stderr
    remedies = gradwatch("remedies", job_id, "--seeds", "1", "--server", api_server.url)
    assert remedies.returncode == Exit.REFUSED and "409" in remedies.stderr


def test_a_study_waits_and_writes_its_summary_and_plots(
    tmp_path: Path, api_server: Server, worker_process: Worker
) -> None:
    out = tmp_path / "study"
    done = gradwatch("study", write(tmp_path, STUDY), "--server", api_server.url, "--out", str(out))
    assert done.returncode == Exit.OK, done.stderr
    assert "2/2  experiments finished" in done.stderr
    assert "succeeded: 2 succeeded, 0 failed, 0 cancelled of 2" in done.stderr
    rows = json.loads((out / "summary.json").read_text())["rows"]
    assert [row["label"] for row in rows] == ["activation=tanh", "activation=relu"]
    assert (out / "summary.csv").read_text().startswith("config")
    assert list(out.glob("*.png"))
    status = gradwatch("status", done.stdout.strip(), "--server", api_server.url)
    assert status.stdout.startswith(f"study {done.stdout.strip()} succeeded (2/2")


def test_a_studys_report_counts_its_missing_children(capsys: pytest.CaptureFixture[str]) -> None:
    counts = {"succeeded": 3, "failed": 1, "cancelled": 0, "missing": 2, "children": 6}
    _report_study(cast(Study, {"status": "failed", "progress": counts}))
    assert capsys.readouterr().err == "failed: 3 succeeded, 1 failed, 0 cancelled, 2 missing of 6\n"


@pytest.mark.parametrize(
    ("args", "stdin", "code", "says"),
    [
        (["submit", "-"], '{"training": {"epochs": 100000}}', Exit.REFUSED, "training.epochs"),
        (["submit", "-"], "not json", Exit.USAGE, "Expecting value"),
        (["study", "-"], '{"axes": {"nope": [1]}}', Exit.REFUSED, "axes"),
        (["status", "01JD8X3Q7R5M2N4P6T8V0W2Y4Z"], None, Exit.NOT_FOUND, "404"),
        (["remedies", "01JD8X3Q7R5M2N4P6T8V0W2Y4Z"], None, Exit.NOT_FOUND, "404"),
    ],
)
def test_what_went_wrong_is_said_and_is_the_exit_status(
    api_server: Server, args: list[str], stdin: str | None, code: Exit, says: str
) -> None:
    done = gradwatch(*args, "--server", api_server.url, stdin=stdin)
    assert done.returncode == code, done.stderr
    assert says in done.stderr


def test_no_service_and_no_key_have_their_own_exit_statuses(keys_server: KeysServer) -> None:
    nowhere = gradwatch("status", "x", "--server", f"http://127.0.0.1:{free_port()}")
    assert nowhere.returncode == Exit.UNAVAILABLE
    keyless = gradwatch("submit", "-", "--server", keys_server.url, stdin="{}")
    assert keyless.returncode == Exit.UNAUTHORIZED, keyless.stderr
    keyed = gradwatch(
        "submit", "-", "--server", keys_server.url, "--key", keys_server.keys["carol"],
        stdin=json.dumps(UNTRAINED),
    )  # fmt: skip
    assert keyed.returncode == Exit.OK, keyed.stderr


@pytest.mark.parametrize("name", ["../escaped.png", "/tmp/absolute.png", "sub/dir.png", ".hidden"])
def test_a_file_name_from_the_server_never_leaves_the_output_folder(
    tmp_path: Path, name: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match="not a plain file name"):
        _write(out, {name: b"png"})
    assert list(tmp_path.rglob("*.png")) == []
    assert _write(out, {"loss.png": b"png"}) == [out / "loss.png"]
