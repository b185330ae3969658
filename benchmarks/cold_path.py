"""The cold path: what a user waits for on workers that have not seen their network yet.

Every figure is timed on freshly started, production-shaped processes (an API
and prefork workers, one pool process each, on a Redis namespace of the
script's own), for each engine `--variants` entry side by side in one run:

  - `tiered`: as shipped: a worker counts as live once its pool process is warm,
    a network trains on the plain graph until it recurs (its second job), then
    XLA compiles in the background for its next;
  - `compile-first`: `tiered`, but compiling XLA from a network's first job on
    (GRADWATCH_XLA_COMPILE_AFTER=1), as the tiered engine did at first;
  - `never`: `tiered` without XLA (GRADWATCH_XLA=never): no background compile
    ever takes a core, every job on the plain graph;
  - `today`: the mechanisms switched off (GRADWATCH_XLA=always, every job on
    XLA, a network's first paying the compile; GRADWATCH_WARM_START=0, the worker
    live before its pool process has loaded TensorFlow; GRADWATCH_EAGER_PLOTS=all,
    all seven PNGs drawn as a job ends, not just the tutorial's two);
  - `before` (with `--before DIR`): `tiered` as another checkout of the project
    runs it (say the commit before a change: `git archive <commit> | tar -x -C
    DIR`), so a change is measured against the code it replaces, in one run
    (`--before-compiles-first` where that code compiles XLA from a network's
    first job, as it did before 27570ba).

Each run starts, per variant, fresh deployments for:

  1. one worker: the first job after /readyz counts it live (`{}`, the tutorial),
     then `--networks` networks it has not seen (depths, widths, activations),
     each POST to `succeeded` (the default PNGs stored); then the same networks
     again, twice: `repeat 1` right after (a background compile may still be
     under way, or, for a network that recurs, just asked for) and `warm`, once
     the worker has compiled them (its log says so: a network's XLA takes
     seconds to compile on 2 cores, longer than a job, so jobs posted back to
     back outrun it; `warm` is what a user who looked at the result first waits
     for, and what the target of a warm repeat means);
  2. the `tutorial` study (3 children) on one fresh worker, and on two;
  3. a study of 12 networks of 12 shapes on two fresh workers.

A job's time is from its POST until its event stream's final state (the record
is `succeeded` with the PNGs stored); a study's until its final state (summary
and its own plots stored). Medians over `--runs` runs, each run going through
the variants in turn so that the machine's load falls on both alike.

Run (needs Redis at REDIS_URL, default 127.0.0.1:6379; deletes its keys after):

    .venv/bin/python benchmarks/cold_path.py [--runs 3] [--variants tiered today]
        [--before DIR --variants tiered before]

Targets (2 cores, POST to succeeded with the default PNGs stored): first job after
ready <= 1.5 s; an unseen network <= 1.0 s and within 2.5x of its warm repeat; a
warm repeat <= 0.4 s; the tutorial study on fresh workers <= 3 s on one and on two;
the 12-shape study <= 6 s on two workers; warm figures no worse than today's.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.service_processes import (
    ROOT,
    Process,
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

JOB_SECONDS = 300.0
START_SECONDS = 180.0
VARIANTS: dict[str, dict[str, str]] = {
    "tiered": {},
    "compile-first": {"GRADWATCH_XLA_COMPILE_AFTER": "1"},
    "never": {"GRADWATCH_XLA": "never"},
    "before": {},  # tiered, from the checkout --before names
    "today": {
        "GRADWATCH_XLA": "always",
        "GRADWATCH_WARM_START": "0",
        "GRADWATCH_EAGER_PLOTS": "all",
    },
}
# The background compiles a variant's worker runs before its networks are warm: one per
# network, and one more where the first job (`{}`) asks for one (compiling on first
# sight); None: no background compile (every job on XLA, or none).
COMPILES_BEFORE_WARM: dict[str, int | None] = {
    "tiered": 0,
    "compile-first": 1,
    "before": 0,  # as `tiered`; --before-compiles-first: 1
    "never": None,
    "today": None,
}
# What a worker logs as a background compile ends (core.engine.graph_cache).
COMPILE_ENDED = ("XLA compiled in the background", "compiling XLA in the background failed")
# Networks no worker has seen: other depths, widths and activations than the tutorial's.
UNSEEN: list[dict[str, Any]] = [
    {"model": {"hidden_layers": [8, 8, 8], "activation": "relu"}},
    {"model": {"hidden_layers": [5] * 6, "activation": "tanh"}},
    {"model": {"hidden_layers": [16, 12], "activation": "elu"}},
    {"model": {"hidden_layers": [10] * 4, "activation": "swish"}},
    {"model": {"hidden_layers": [6, 6, 6, 6, 6], "activation": "leaky_relu"}},
]
# The checkout each variant runs, where it is not this one.
ROOTS: dict[str, Path] = {}
TUTORIAL_STUDY: dict[str, Any] = {"preset": "tutorial"}
SHAPES_STUDY: dict[str, Any] = {
    "base": {"seed": 1},
    "axes": {
        "model.hidden_layers": [[5] * depth for depth in (2, 3, 4, 6)],
        "model.activation": ["sigmoid", "tanh", "relu"],
    },
}


@dataclass
class Deployment:
    """An API and fresh workers on a namespace of their own."""

    settings: Settings
    client: httpx.Client
    processes: list[Process]
    started: float  # when its processes were started (perf_counter)
    ready_after: float = 0.0  # seconds from start until /readyz counted every worker


Figures = dict[str, list[float]]  # figure name -> seconds, one per run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--networks", type=int, default=3, help="unseen networks (3 to 5)")
    parser.add_argument(
        "--before", type=Path, help="another checkout of the project: the `before` variant's code"
    )
    parser.add_argument(
        "--before-compiles-first",
        action="store_true",
        help="the --before checkout compiles XLA from a network's first job (before 27570ba)",
    )
    parser.add_argument(
        "--variants", nargs="+", default=["tiered", "today"], choices=list(VARIANTS)
    )
    args = parser.parse_args(argv)
    if args.before_compiles_first:
        COMPILES_BEFORE_WARM["before"] = 1
    # Stopped (SIGTERM, or SIGINT, which a shell's background job ignores): the
    # deployments under way still stop their processes and delete their keys.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if "before" in args.variants:
        if args.before is None or not (args.before / "worker").is_dir():
            parser.error("the `before` variant needs --before, a checkout of the project")
        ROOTS["before"] = args.before.resolve()
    figures: dict[str, Figures] = {variant: defaultdict(list) for variant in args.variants}
    kinds: dict[str, dict[str, list[str]]] = {v: defaultdict(list) for v in args.variants}
    logs = Path(tempfile.mkdtemp(prefix="gradwatch-cold-path-"))
    networks = UNSEEN[: max(3, min(args.networks, len(UNSEEN)))]
    for run in range(1, args.runs + 1):
        for variant in args.variants:
            print(f"run {run} of {args.runs}, {variant}:", flush=True)
            tag = f"r{run}{variant}"
            got, graphs = one_worker_jobs(variant, tag, networks, logs)
            for name, seconds in got.items():
                figures[variant][name].append(seconds)
            for name, graph in graphs.items():
                kinds[variant][name].append(graph)
            for workers, study, name in (
                (1, TUTORIAL_STUDY, "tutorial study, 1 fresh worker"),
                (2, TUTORIAL_STUDY, "tutorial study, 2 fresh workers"),
                (2, SHAPES_STUDY, "12-shape study, 2 fresh workers"),
            ):
                with deployment(variant, f"{tag}s{workers}", workers, logs) as service:
                    seconds = time_study(service.client, study)
                figures[variant][name].append(seconds)
                print(f"  {name}: {seconds:.3f} s", flush=True)
    report(figures, kinds, args.runs, logs)
    return 0


def one_worker_jobs(
    variant: str, tag: str, networks: list[dict[str, Any]], logs: Path
) -> tuple[dict[str, float], dict[str, str]]:
    """The first job and the unseen networks, then their repeats, on one fresh worker."""
    seconds: dict[str, float] = {}
    graphs: dict[str, str] = {}
    with deployment(variant, tag, 1, logs) as service:
        seconds["worker start to ready"] = service.ready_after
        seconds["first job after ready"], graphs["first job"] = time_job(service.client, {})
        for round_name in ("unseen", "repeat 1", "warm"):
            if round_name == "warm":
                wait_for_compiles(service, variant, len(networks))
            for index, network in enumerate(networks, start=1):
                name = f"network {index}, {round_name}"
                seconds[name], graphs[name] = time_job(service.client, {"seed": 1, **network})
    for name, value in seconds.items():
        print(f"  {name}: {value:.3f} s" + (f" ({graphs[name]})" if name in graphs else ""))
    return seconds, graphs


def wait_for_compiles(service: Deployment, variant: str, networks: int) -> None:
    """Until the worker has logged the background compiles that make `networks` warm."""
    extra = COMPILES_BEFORE_WARM.get(variant)
    if extra is None:
        return
    log = service.processes[0].log

    def compiled() -> bool:
        text = log.read_text(errors="replace")
        return sum(text.count(line) for line in COMPILE_ENDED) >= networks + extra

    wait_until(compiled, timeout=START_SECONDS, what="the background compiles")


@contextmanager
def deployment(variant: str, tag: str, workers: int, logs: Path) -> Iterator[Deployment]:
    """Fresh workers and an API for `variant`, ready (every worker live); stopped after."""
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    settings = Settings(namespace=f"gwbenchcold{os.getpid()}{tag}", redis_url=redis_url)
    env = service_env(settings, **VARIANTS[variant])
    port = free_port()
    started = time.perf_counter()
    root = ROOTS.get(variant, ROOT)
    processes = [
        start_worker(env, f"{tag}w{number}@cold", logs / tag, root=root)
        for number in range(workers)
    ]
    processes.append(start_api(env, port, logs / tag, root=root))
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0)
    service = Deployment(settings, client, processes, started)
    try:
        wait_for_api(str(client.base_url).rstrip("/"), processes[-1])
        wait_until_live(service, workers)
        service.ready_after = time.perf_counter() - started
        yield service
    finally:
        client.close()
        for process in reversed(processes):
            process.stop()
        delete_namespace(settings)


def wait_until_live(service: Deployment, workers: int) -> None:
    """Until /readyz counts `workers` live workers, as a client waiting to submit would."""
    queue = service.settings.queue_for(Device.CPU)

    def live() -> bool:
        for process in service.processes:
            if not process.alive():
                raise SystemExit(f"{process.name} exited; see {process.log}")
        body = service.client.get("/readyz").json()
        return int(body.get("live_workers", {}).get(queue, 0)) >= workers

    wait_until(live, timeout=START_SECONDS, what="the workers to be live")


def time_job(client: httpx.Client, spec: dict[str, Any]) -> tuple[float, str]:
    """Seconds from POST to the final state (succeeded, PNGs stored), and the graph's kind."""
    seconds, job_id = time_to_success(client, "/v1/experiments", spec)
    timing = client.get(f"/v1/experiments/{job_id}/result").json()["timing"]
    return seconds, str(timing.get("graph", "xla" if timing.get("xla") else "plain"))


def time_study(client: httpx.Client, body: dict[str, Any]) -> float:
    """Seconds from POST to the study's final state (summary and plots stored)."""
    return time_to_success(client, "/v1/studies", body)[0]


def time_to_success(
    client: httpx.Client, collection: str, body: dict[str, Any]
) -> tuple[float, str]:
    """Seconds from POSTing `body` to `collection` until its event stream's final state
    (checked succeeded), and the new resource's id."""
    started = time.perf_counter()
    response = client.post(collection, json=body)
    if response.status_code != 202:
        raise SystemExit(f"POST {collection} answered {response.status_code}: {response.text}")
    resource = response.json()["id"]
    follow(client, f"{collection}/{resource}/events")
    seconds = time.perf_counter() - started
    record = client.get(f"{collection}/{resource}").json()
    if record["status"] != "succeeded":
        raise SystemExit(f"{collection}/{resource} ended {record['status']}: {record}")
    return seconds, resource


def follow(client: httpx.Client, url: str) -> None:
    """Read an event stream until it ends (right after the final state event)."""
    with client.stream("GET", url, timeout=JOB_SECONDS) as stream:
        for _ in stream.iter_lines():
            pass


# ------------------------------------------------------------------------ report


def report(
    figures: dict[str, Figures], kinds: dict[str, dict[str, list[str]]], runs: int, logs: Path
) -> None:
    variants = list(figures)
    names = list(next(iter(figures.values())))
    print()
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"cold path, fresh workers, {runs} run(s): median (min-max) seconds; load {load}")
    print(f"  {'':<34}" + "".join(f"{variant:<30}" for variant in variants))
    for name in names:
        cells = []
        for variant in variants:
            values = figures[variant].get(name, [])
            graph = "/".join(sorted(set(kinds[variant].get(name, []))))
            cell = f"{statistics.median(values):6.3f} ({min(values):.2f}-{max(values):.2f})"
            cells.append(f"{cell} {graph}".rstrip())
        print(f"  {name:<34}" + "".join(f"{cell:<30}" for cell in cells))
    for baseline in variants:
        if "tiered" in figures and baseline != "tiered":
            print(f"\n  tiered / {baseline}, medians (what survives the machine's load):")
            for name in names:
                ratio = statistics.median(figures["tiered"][name]) / statistics.median(
                    figures[baseline][name]
                )
                print(f"    {name:<34}{ratio:6.2f}x")
    for variant in variants:
        print(f"\n  {variant}: targets")
        baselines = {
            b: figures[b]
            for b in ("before", "today", "compile-first")
            if b in figures and b != variant
        }
        for line in verdicts(figures[variant], baselines):
            print(f"    {line}")
    print(f"\n  logs: {logs}")


def verdicts(mine: Figures, baselines: dict[str, Figures]) -> list[str]:
    def median(name: str, of: Figures = mine) -> float:
        return statistics.median(of[name])

    unseen = [n for n in mine if n.endswith(", unseen")]
    warm = [n.replace(", unseen", ", warm") for n in unseen]
    worst_unseen = max(median(n) for n in unseen)
    worst_warm = max(median(n) for n in warm)
    ratio = max(median(u) / median(w) for u, w in zip(unseen, warm, strict=True))
    checks = [
        ("first job after ready <= 1.5 s", median("first job after ready"), 1.5),
        ("unseen network <= 1.0 s (worst median)", worst_unseen, 1.0),
        ("unseen within 2.5x of its warm repeat (worst)", ratio, 2.5),
        ("warm repeat <= 0.4 s (worst median)", worst_warm, 0.4),
        ("tutorial study, 1 fresh worker <= 3 s", median("tutorial study, 1 fresh worker"), 3.0),
        ("tutorial study, 2 fresh workers <= 3 s", median("tutorial study, 2 fresh workers"), 3.0),
        ("12-shape study, 2 fresh workers <= 6 s", median("12-shape study, 2 fresh workers"), 6.0),
    ]
    lines = [f"{label}: {value:.3f} {'met' if value <= limit else 'NOT met'}"
             for label, value, limit in checks]  # fmt: skip
    for name, baseline in baselines.items():
        then = max(median(n, baseline) for n in warm)
        verdict = "no regression" if worst_warm <= 1.1 * then else "REGRESSED"
        lines.append(f"warm repeat against {name}'s ({then:.3f} s, 10% noise): {verdict}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
