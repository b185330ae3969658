"""The service's processes for the reliability and load scripts: workers, the API, Redis keys.

Each worker is production-shaped (`--device cpu`, prefork, one pool process) and
runs in its own process group, so a script can SIGKILL it whole as a crash
would. Logs go to files under a folder the script names, one per process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.experiment.spec import Device
from core.settings import Settings
from core.store.keys import Keys
from core.store.stores import JobStore

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 180.0


@dataclass
class Process:
    """A started process, its name and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_mb(self) -> float:
        """The process's resident memory (its group's leader alone), MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def kill(self) -> None:
        """SIGKILL the whole process group (a worker with its pool process)."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM (a worker's warm shutdown), SIGKILL after `grace` seconds."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.kill()
        # Nothing of the group may outlive it (a pool process, say).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a process serving `settings`' namespace."""
    return {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "GRADWATCH_NAMESPACE": settings.namespace,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def start(
    name: str, argv: list[str], env: dict[str, str], logs: Path, *, root: Path = ROOT
) -> Process:
    """Start `argv` in the project's checkout `root` (another one runs that one's code)."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    env = env if root == ROOT else {**env, "PYTHONPATH": str(root)}
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Process(name, process, log)


def start_worker(env: dict[str, str], hostname: str, logs: Path, *, root: Path = ROOT) -> Process:
    """A CPU worker named `hostname` (Celery's node name), of the checkout `root`."""
    argv = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "--device", "cpu", "--concurrency", "1", "-n", hostname, "--loglevel", "INFO",
        "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    return start(hostname.partition("@")[0], argv, env, logs, root=root)


HEAD_DEADLINE = "api.head_deadline:HeadDeadline"


def start_api(
    env: dict[str, str], port: int, logs: Path, *, root: Path = ROOT, http: str | None = None
) -> Process:
    """The API of the checkout `root` under uvicorn's `http` protocol: by default the
    one `gradwatch serve` runs (the head deadline, where that code has it)."""
    if http is None:
        http = HEAD_DEADLINE if (root / "api" / "head_deadline.py").exists() else "httptools"
    argv = [
        sys.executable, "-m", "uvicorn", "api.main:app", "--http", http, "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return start("api", argv, env, logs, root=root)


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def wait_for_worker(store: JobStore, settings: Settings, worker: Process, hostname: str) -> None:
    """Return once `hostname` has sent a heartbeat on the cpu queue."""
    queue = settings.queue_for(Device.CPU)

    def beating() -> bool:
        if not worker.alive():
            raise RuntimeError(f"worker {hostname} exited; see {worker.log}")
        return hostname in store.live_workers(queue=queue)

    wait_until(beating, timeout=START_SECONDS, what=f"worker {hostname}")


def wait_for_api(url: str, api: Process) -> None:
    def healthy() -> bool:
        if not api.alive():
            raise RuntimeError(f"the API exited; see {api.log}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(healthy, timeout=START_SECONDS, what="the API")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def delete_namespace(settings: Settings) -> None:
    """Delete every key of the script's own namespace."""
    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = list(client.scan_iter(match=Keys(settings.namespace).pattern(), count=1000))
        for start_at in range(0, len(keys), 1000):
            client.delete(*keys[start_at : start_at + 1000])
    finally:
        client.close()


@contextlib.contextmanager
def own_redis(name: str, logs: Path, *, maxclients: int = 10_000) -> Iterator[str]:
    """A redis-server of the benchmark's own on a free port (no persistence): its URL."""
    port = free_port()
    argv = [
        shutil.which("redis-server") or "redis-server", "--port", str(port),
        "--save", "", "--appendonly", "no", "--maxclients", str(maxclients),
    ]  # fmt: skip
    server = start(f"redis-{name}", argv, dict(os.environ), logs)
    url = f"redis://127.0.0.1:{port}/0"

    def answers() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    try:
        wait_until(answers, timeout=30, what="redis-server")
        yield url
    finally:
        server.stop()


def checkout(repo: Path, commit: str, folder: Path) -> Path:
    """A copy of `commit` of the git checkout `repo` in `folder` (to run that code)."""
    folder.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", commit], cwd=repo, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder
