"""`gradwatch run`: trains here and writes the numbers, every plot and the raw arrays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SPEC = {
    "seed": 5,
    "model": {"hidden_layers": [4, 4], "activation": "tanh"},
    "training": {"epochs": 3},
    "capture": {"raw": True},
}


def gradwatch(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_run_writes_result_plots_and_arrays(tmp_path: Path) -> None:
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(SPEC))
    out = tmp_path / "out"
    done = gradwatch("run", str(spec_path), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "verdict: " in done.stdout
    assert "3/3" in done.stderr  # the progress bar reached the end
    result = json.loads((out / "result.json").read_text())
    assert result["seed"] == 5 and result["history"]["epoch"] == [1, 2, 3]
    names = {path.stem for path in out.glob("*.png")}
    expected = {"dataset", "weights", "gradients", "gradient_flow", "activations"}
    assert expected | {"histograms", "boundary"} == names
    for path in out.glob("*.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(out / "arrays.npz") as arrays:
        assert arrays["hidden_1/kernel/weights"].shape == (3, 2, 4)
        assert arrays["output/bias/gradients"].shape == (3, 1)
        assert arrays["dataset/x"].shape == (1000, 2)


def test_run_reads_the_spec_from_stdin_and_takes_overrides(tmp_path: Path) -> None:
    done = gradwatch(
        "run", "-", "--out", str(tmp_path), "--epochs", "2", "--seed", "9", "--quiet",
        stdin=json.dumps({"model": {"hidden_layers": [3]}}),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert (result["seed"], result["spec"]["training"]["epochs"]) == (9, 2)
    assert not (tmp_path / "arrays.npz").exists()


def test_bad_spec_is_refused_naming_the_field(tmp_path: Path) -> None:
    done = gradwatch("run", "-", "--out", str(tmp_path), stdin='{"training": {"epochs": 5000}}')
    assert done.returncode == 2
    assert "training.epochs" in done.stderr and "1000" in done.stderr
    assert not (tmp_path / "result.json").exists()
