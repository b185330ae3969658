"""`gradwatch run`: trains here and writes the numbers, every plot and the raw arrays."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from core.cli.progress import outcome

SPEC = {
    "seed": 5,
    "model": {"hidden_layers": [4, 4], "activation": "tanh"},
    "training": {"epochs": 3},
    "capture": {"raw": True},
}
# A regression (the adding problem over 5 steps) on a small MLP: it has no accuracy.
REGRESSION = {
    "seed": 3,
    "dataset": {"kind": "adding", "n_samples": 100, "sequence_length": 5},
    "model": {"hidden_layers": [8]},
    "training": {"epochs": 3},
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


def test_run_reads_a_regression_s_loss_against_its_baseline(tmp_path: Path) -> None:
    done = gradwatch("run", "-", "--out", str(tmp_path), stdin=json.dumps(REGRESSION))
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "result.json").read_text())["metrics"]
    loss, baseline = metrics["after"]["loss"], metrics["baseline"]["loss"]
    assert metrics["after"]["accuracy"] is None
    beat = "beat" if loss < baseline else "did not beat"
    figures = f"loss {loss:.4f}, baseline loss {baseline:.4f} (loss/baseline {loss / baseline:.3g}"
    assert f"seed 3: {figures}: {beat} it)" in done.stdout.splitlines()
    assert "3/3  loss " in done.stderr and "accuracy" not in done.stderr + done.stdout


def test_a_run_s_figures_are_its_accuracy_or_its_loss_against_the_baseline() -> None:
    assert outcome(0.69314, 0.5, None) == "loss 0.6931, accuracy 0.5000"
    beat = "loss 0.0500, baseline loss 0.2000 (loss/baseline 0.25: beat it)"
    assert outcome(0.05, None, 0.2) == beat
    assert outcome(None, None, 0.2) == "loss nan, baseline loss 0.2000"
