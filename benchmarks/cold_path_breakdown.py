"""Where a job's wait goes, POST to the client seeing `succeeded`, phase by phase.

On a fresh deployment (an API and prefork workers on a namespace of the script's
own, as `benchmarks/cold_path.py` starts them), it posts jobs one after another
(the first job, networks not seen before, the same again at once, then once
the worker has compiled them: warm) and times each from
what every step leaves behind, all on this host's clock:

  accept     POST sent -> the 202 back (the API stores the job and queues it);
  dispatch   the record's `created_at` -> the worker's `started_at` (the dispatcher's
             claim, the Celery message to the worker's own queue, the pool process
             picking it up, `mark_running`);
  prepare    `started_at` -> the first epoch's progress event (spec, engine checkout,
             dataset, the trainer's reset);
  epochs     first -> last progress event (training; the epochs done reach the store every
             tenth of a second, worker.progress);
  finish     last progress event -> `finished_at` (final evaluation, result, PNGs,
             storing: the worker log's split of it is printed beside);
  observe    `finished_at` -> the client's event stream ending.

The stream events' ids carry the millisecond the store wrote them; the worker
logs the seconds it spent training, drawing and storing.

    .venv/bin/python benchmarks/cold_path_breakdown.py [--repeats 3] [--variant tiered]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cold_path import UNSEEN, VARIANTS, deployment, follow, wait_for_compiles
from benchmarks.service_processes import wait_until
from core.store.keys import Keys

PHASES = ("accept", "dispatch", "prepare", "epochs", "finish", "observe", "total")
_LOGGED = re.compile(
    r"job (\w+) succeeded: training ([\d.]+) s, (\d+) PNGs ([\d.]+) s, storing ([\d.]+) s"
)


def time_job(
    client: httpx.Client, store: redis.Redis, keys: Keys, spec: dict[str, Any]
) -> dict[str, Any]:
    """One job's phases (seconds) and its id."""
    posted = time.time()
    response = client.post("/v1/experiments", json=spec)
    accepted = time.time()
    job_id = response.json()["id"]
    follow(client, f"/v1/experiments/{job_id}/events")
    observed = time.time()
    record = client.get(f"/v1/experiments/{job_id}").json()
    raw = store.hgetall(keys.job(job_id).record)
    created, started, finished = (
        float(raw[field]) for field in (b"created_at", b"started_at", b"finished_at")
    )
    progress = [
        int(entry_id.decode().partition("-")[0]) / 1000
        for entry_id, fields in store.xrange(keys.job(job_id).events)
        if fields[b"type"] == b"progress"
    ]
    timing = client.get(f"/v1/experiments/{job_id}/result").json()["timing"]
    return {
        "id": job_id,
        "status": record["status"],
        "graph": timing.get("graph", ""),
        "accept": accepted - posted,
        "dispatch": started - created,
        "prepare": progress[0] - started,
        "epochs": progress[-1] - progress[0],
        "finish": finished - progress[-1],
        "observe": observed - finished,
        "total": observed - posted,
    }


def worker_split(logs: Path) -> dict[str, tuple[float, int, float, float]]:
    """job id -> (training, PNGs, drawing, storing) seconds, as the workers logged them."""
    found: dict[str, tuple[float, int, float, float]] = {}
    for log in logs.rglob("*.log"):
        for match in _LOGGED.finditer(log.read_text(errors="replace")):
            job, training, pngs, drawing, storing = match.groups()
            found[job] = (float(training), int(pngs), float(drawing), float(storing))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the same networks")
    variants = [variant for variant in VARIANTS if variant != "before"]
    parser.add_argument("--variant", default="tiered", choices=variants)
    parser.add_argument("--networks", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="gradwatch-breakdown-"))
    rows: list[tuple[str, dict[str, Any]]] = []
    with deployment(args.variant, "bd", 1, logs) as service:
        keys = Keys(service.settings.namespace)
        store = redis.Redis.from_url(service.settings.redis_url)
        rows.append(("first job", time_job(service.client, store, keys, {})))
        for round_number in range(args.repeats + 1):
            label = "unseen" if round_number == 0 else f"repeat {round_number}"
            for index, network in enumerate(UNSEEN[: args.networks], start=1):
                row = time_job(service.client, store, keys, {"seed": 1, **network})
                rows.append((f"network {index}, {label}", row))
        if args.repeats:  # the networks recurred: once the worker has compiled them, warm
            wait_for_compiles(service, args.variant, args.networks)
            for index, network in enumerate(UNSEEN[: args.networks], start=1):
                row = time_job(service.client, store, keys, {"seed": 1, **network})
                rows.append((f"network {index}, warm", row))
        rows.append(("{} again", time_job(service.client, store, keys, {})))
        last = rows[-1][1]["id"]
        wait_until(lambda: last in worker_split(logs), timeout=10, what="the worker's log")
        split = worker_split(logs)
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"seconds, {args.variant}, load {load}")
    header = "".join(f"{phase:>9}" for phase in PHASES)
    print(f"  {'job':<22}{'graph':<7}{header}   worker: train/PNGs:drawing/store")
    for name, row in rows:
        train, pngs, drawing, storing = split.get(row["id"], (0.0, 0, 0.0, 0.0))
        cells = "".join(f"{row[phase]:9.3f}" for phase in PHASES)
        worker = f"{train:.3f}/{pngs}:{drawing:.3f}/{storing:.3f}"
        print(f"  {name:<22}{row['graph']:<7}{cells}   {worker}")
    for kind in ("repeat", "warm"):
        chosen = [row for name, row in rows if kind in name]
        if chosen:
            medians = "".join(
                f"{statistics.median(row[phase] for row in chosen):9.3f}" for phase in PHASES
            )
            print(f"  {'median, ' + kind:<29}{medians}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(f"  logs: {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
