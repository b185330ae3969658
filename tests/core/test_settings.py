"""Settings that each pass alone but contradict each other are refused at start, by name."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from core.settings import HARD_LIMIT_MARGIN, Settings
from tests.conftest import ROOT


def refusal(**values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate(values)
    return str(caught.value)


def test_the_defaults_fit_together() -> None:
    settings = Settings()
    assert settings.job_time_limit >= settings.job_soft_time_limit + HARD_LIMIT_MARGIN
    assert settings.worker_silent_seconds >= 3 * settings.heartbeat_seconds


@pytest.mark.parametrize(("soft", "hard"), [(1800, 100), (1800, 1800), (600, 600 + 4)])
def test_a_hard_time_limit_not_after_the_soft_one_is_refused(soft: int, hard: int) -> None:
    message = refusal(job_soft_time_limit=soft, job_time_limit=hard)

    assert f"GRADWATCH_JOB_TIME_LIMIT ({hard} s)" in message
    assert f"GRADWATCH_JOB_SOFT_TIME_LIMIT ({soft} s)" in message


def test_a_hard_time_limit_just_after_the_soft_one_is_taken() -> None:
    settings = Settings(job_soft_time_limit=600, job_time_limit=600 + HARD_LIMIT_MARGIN)
    assert settings.job_time_limit == 605


def test_a_silence_shorter_than_three_heartbeats_is_refused() -> None:
    message = refusal(heartbeat_seconds=10, worker_silent_seconds=20)

    assert "GRADWATCH_WORKER_SILENT_SECONDS (20)" in message
    assert "GRADWATCH_HEARTBEAT_SECONDS (10)" in message
    assert Settings(heartbeat_seconds=10, worker_silent_seconds=30).worker_silent_seconds == 30


def test_every_contradiction_is_named_at_once() -> None:
    message = refusal(
        job_soft_time_limit=1800, job_time_limit=100, heartbeat_seconds=10, worker_silent_seconds=20
    )
    assert "GRADWATCH_JOB_TIME_LIMIT" in message and "GRADWATCH_WORKER_SILENT_SECONDS" in message


def test_the_api_refuses_to_start_with_them() -> None:
    env = {**os.environ, "GRADWATCH_JOB_SOFT_TIME_LIMIT": "1800", "GRADWATCH_JOB_TIME_LIMIT": "100"}
    done = subprocess.run(
        [sys.executable, "-c", "import api.main"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode != 0
    assert "GRADWATCH_JOB_TIME_LIMIT (100 s)" in done.stderr
    assert "GRADWATCH_JOB_SOFT_TIME_LIMIT (1800 s)" in done.stderr
