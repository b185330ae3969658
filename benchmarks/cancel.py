"""How long a cancel takes to stop the slowest specs inside the limits, on a real worker.

`--spec mlp` (the default): circles, 4,000 samples, four hidden layers of 512, one
epoch at batch size 1, every step captured with the largest probe. Until result
version 3 the probe ran after every step (4,000 samples forward-passed through the
net: billions of operations a step); it now runs at the epoch's edges only, so the
steps are cheaper and the README's figures, taken before, bound today's. Its one
epoch still takes over a minute (82 s for the engine alone, at load 4); the
engine runs it in calls of bounded cost and looks for a cancel between them
(core.engine.chunks).

`--spec lstm`, `gru`, `conv`: the slowest steps a layer list may take. A
recurrent layer runs its time steps one after another, so the slowest is the
longest pass the limits admit (`Limits.STEP_TIMESTEPS`, 1,000: one layer over
`adding` at `sequence_length` 1,000) with the most arithmetic a step may hold
(`Limits.STEP_FLOPS`, 1.5e9: LSTM(240) or GRU(280) at batch size 1), and a
probe of 3 sequences at the epoch points (its forward pass is bounded by the
same limit). `conv`: three 3x3 convolutions (32, 64, 64 filters) over `bars`
at 64x64, batch size 1 (1.4e9 operations a step). Each calls at most one
optimizer step at a time; `--spec all` runs every spec, one after another, in
one run.

Each trial POSTs the spec to a production-shaped worker (prefork, one pool
process; warm after the first trial), waits until it has trained `--after`
seconds (by default 3 s for the MLP and the convolutions, 10 s for the
recurrent layers: past their first evaluation, before their end), plus 0.37 s
more each trial so the cancels fall at different points of a step, POSTs the
cancel and times until the record says `cancelled`.

Run (needs Redis at REDIS_URL, default 127.0.0.1:6379; deletes its keys after):

    .venv/bin/python benchmarks/cancel.py [--spec all] [--trials 5] [--after 3]

Target: about a second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.service_processes import (
    delete_namespace,
    free_port,
    service_env,
    start_api,
    start_worker,
    wait_for_api,
    wait_until,
)
from core.experiment.spec import Device
from core.settings import Settings
from core.store.stores import JobStore
from tests.conftest import WORST_SPEC

# Seconds trained before the cancel: past the first evaluation, before the end.
_AFTER = {"mlp": 3.0, "lstm": 10.0, "gru": 10.0, "conv": 3.0}
_CONV = {"kernel_size": 3, "padding": "same", "activation": "relu"}


def _longest_loop(cell: str, units: int) -> dict[str, Any]:
    """One `cell` layer over `adding` at 1,000 steps, batch 1: the slowest recurrent step."""
    return {
        "seed": 7,
        "dataset": {"kind": "adding", "sequence_length": 1000, "n_samples": 100},
        "model": {"layers": [{"class_name": cell, "config": {"units": units}}]},
        "training": {"epochs": 1, "batch_size": 1},
        "capture": {"probe_size": 3},
    }


SPECS: dict[str, dict[str, Any]] = {
    "mlp": WORST_SPEC,
    "lstm": _longest_loop("LSTM", 240),  # one step: 1.42e9 operations
    "gru": _longest_loop("GRU", 280),  # 1.44e9
    # 32, 64, 64 filters over 64x64: 1.37e9.
    "conv": {
        "seed": 7,
        "dataset": {"kind": "bars", "image_size": 64, "n_samples": 360},
        "model": {
            "layers": [
                {"class_name": "Conv2D", "config": {"filters": 32, **_CONV}},
                {"class_name": "Conv2D", "config": {"filters": 64, **_CONV}},
                {"class_name": "Conv2D", "config": {"filters": 64, **_CONV}},
                {"class_name": "GlobalAveragePooling2D"},
            ]
        },
        "training": {"epochs": 1, "batch_size": 1},
        "capture": {"probe_size": 3},
    },
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", choices=[*SPECS, "all"], default="mlp")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--after", type=float, help="seconds trained before cancel")
    args = parser.parse_args(argv)
    names = list(SPECS) if args.spec == "all" else [args.spec]
    loads = [os.getloadavg()]
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    settings = Settings(namespace=f"gwbenchcancel{os.getpid()}", redis_url=redis_url)
    logs = Path(tempfile.mkdtemp(prefix="gradwatch-cancel-"))
    env = service_env(settings)
    port = free_port()
    worker = start_worker(env, "cancel@bench", logs)
    api = start_api(env, port, logs)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0)
    store = JobStore.from_settings(settings)
    latencies: dict[str, list[float]] = {name: [] for name in names}
    try:
        wait_for_api(f"http://127.0.0.1:{port}", api)
        queue = settings.queue_for(Device.CPU)
        wait_until(
            lambda: bool(client.get("/readyz").json().get("live_workers", {}).get(queue)),
            timeout=180,
            what="the worker",
        )
        for name in names:
            after = args.after if args.after is not None else _AFTER[name]
            for trial in range(1, args.trials + 1):
                seconds = one_trial(client, store, SPECS[name], after + 0.37 * (trial - 1))
                latencies[name].append(seconds)
                print(
                    f"{name} trial {trial}: cancelled {seconds:.3f} s after the cancel", flush=True
                )
            loads.append(os.getloadavg())
    finally:
        client.close()
        api.stop()
        worker.stop()
        store.close()
        delete_namespace(settings)
    print(f"\ncancel, POST to cancelled, {args.trials} trials each (target: about 1 s):")
    for name in names:
        median, most = statistics.median(latencies[name]), max(latencies[name])
        print(f"  {name:5} median {median:.3f} s, max {most:.3f} s")
    spread = ", ".join(f"{one[0]:.2f}" for one in loads)
    print(f"load average (1 min) at the start and after each spec: {spread}; logs {logs}")
    return 0


def one_trial(client: httpx.Client, store: JobStore, spec: dict[str, Any], after: float) -> float:
    """Seconds from the cancel's POST until the job's record says cancelled."""
    response = client.post("/v1/experiments", json=spec)
    response.raise_for_status()
    job_id = response.json()["id"]

    def training() -> bool:
        record = store.get(job_id)
        return record is not None and record.status.value == "running"

    wait_until(training, timeout=180, what="the job to run")
    time.sleep(after)  # a trial's length, not a wait for a condition: it trains meanwhile
    started = time.perf_counter()
    response = client.post(f"/v1/experiments/{job_id}/cancel")
    response.raise_for_status()

    def cancelled() -> bool:
        record = store.get(job_id)
        return record is not None and record.status.finished

    wait_until(cancelled, timeout=120, what="the cancel to land")
    seconds = time.perf_counter() - started
    record = store.get(job_id)
    assert record is not None
    if record.status.value != "cancelled":
        raise SystemExit(f"job {job_id} ended {record.status.value}, not cancelled")
    return seconds


if __name__ == "__main__":
    sys.exit(main())
