"""docker-compose.yml and the Dockerfile name the project's real entry points.

Docker does not run in CI; these tests read the files and resolve what each
service would start: the ASGI app uvicorn serves, the Celery app a worker
runs with its options, the health checks' targets, the image's install.
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery import Celery
from celery.app.utils import find_app

from core.store.connections import MAXMEMORY, MAXMEMORY_POLICY

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("api", "worker-cpu", "worker-gpu")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def option(command: list[str], name: str) -> str:
    """The value after `name` in a command line."""
    return command[command.index(name) + 1]


def test_the_services_and_profiles(services: dict[str, Any]) -> None:
    assert set(services) == {"redis", "api", "worker-cpu", "worker-gpu"}
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    assert all("profiles" not in services[name] for name in ("redis", "api", "worker-cpu"))


def test_every_service_has_a_health_check(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no health check"
        assert check.get("interval"), name


def test_redis_persists_to_an_append_only_file_on_a_volume(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    redis = services["redis"]
    command = redis["command"]
    assert option(command, "--appendonly") == "yes"
    assert option(command, "--appendfsync") == "always"
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in compose["volumes"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_redis_refuses_writes_past_its_ceiling_rather_than_evict(
    services: dict[str, Any],
) -> None:
    command = services["redis"]["command"]
    assert option(command, "--maxmemory") == MAXMEMORY
    assert option(command, "--maxmemory-policy") == MAXMEMORY_POLICY == "noeviction"


def test_the_app_services_reach_redis_once_it_is_healthy(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        service = services[name]
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0", name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_the_api_command_serves_the_asgi_app(services: dict[str, Any]) -> None:
    api = services["api"]
    command = api["command"]
    assert command[:3] == ["python", "-m", "uvicorn"]
    module_name, _, attribute = command[3].partition(":")
    app = getattr(importlib.import_module(module_name), attribute)
    assert callable(app)
    assert "/healthz" in app.openapi()["paths"]
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert option(command, "--port") == "8000"
    assert api["ports"][0].endswith(":8000")
    # uvicorn's httptools protocol with a deadline on request heads, by import string.
    module_name, _, attribute = option(command, "--http").partition(":")
    protocol = getattr(importlib.import_module(module_name), attribute)
    assert issubclass(protocol, asyncio.Protocol)


@pytest.mark.parametrize(("name", "device"), [("worker-cpu", "cpu"), ("worker-gpu", "gpu")])
def test_the_worker_commands_run_the_celery_app(
    services: dict[str, Any], name: str, device: str
) -> None:
    worker = services[name]
    command = worker["command"]
    assert command[:3] == ["python", "-m", "celery"]
    app = find_app(option(command, "-A"))
    assert isinstance(app, Celery)
    for module in app.conf.include:  # what the worker imports at start
        importlib.import_module(module)
    assert "gradwatch.train" in app.tasks
    assert command[command.index(option(command, "-A")) + 1] == "worker"
    assert option(command, "--device") == device
    user_options = {param.name for param in app.user_options["worker"]}
    assert "device" in user_options
    assert option(command, "--hostname").startswith(f"{device}@")
    assert f"{device}@" in worker["healthcheck"]["test"][1]


def test_cpu_workers_scale_out(services: dict[str, Any]) -> None:
    # `--scale worker-cpu=N` needs no fixed container name and no host port.
    worker = services["worker-cpu"]
    assert "container_name" not in worker and "ports" not in worker


def test_the_gpu_worker_reserves_an_nvidia_gpu_and_uses_the_gpu_build(
    services: dict[str, Any],
) -> None:
    worker = services["worker-gpu"]
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert worker["build"]["args"]["EXTRAS"] == "gpu"
    assert worker["image"] != services["worker-cpu"]["image"]


def test_the_dockerfile_installs_the_project_with_its_optional_extras(
    services: dict[str, Any],
) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG EXTRAS" in dockerfile
    assert 'pip install ".${EXTRAS:+[${EXTRAS}]}"' in dockerfile
    for package in ("core", "api", "worker"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert services["api"]["build"]["context"] == "."
    assert (ROOT / "pyproject.toml").is_file()
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {"!core/", "!api/", "!worker/", "!pyproject.toml"} <= set(ignored)
