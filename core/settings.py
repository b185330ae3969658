"""Settings read from the environment, validated once, shared by api and worker.

Every variable is prefixed `GRADWATCH_` except `REDIS_URL`, the one most
deployments set. Defaults are safe for development on one machine.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.access.api_keys import parse_key_entry
from core.access.share_links import MIN_SECRET_LENGTH
from core.experiment.grouping import MAX_MEMBERS
from core.experiment.limits import Limits
from core.experiment.spec import Device
from core.experiment.studies import MAX_SEEDS

# The hard time limit comes at least this long after the soft one.
HARD_LIMIT_MARGIN = 5
# Heartbeats a worker misses before it counts as lost.
SILENT_BEATS = 3
MIN_METRICS_TOKEN_LENGTH = 16


def _split_list(value: Any) -> Any:
    """A list setting from the environment: a JSON list, or entries separated by commas."""
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else text.split(",")
    if isinstance(value, list | tuple):
        value = tuple(str(item).strip() for item in value if str(item).strip())
    return value


class Settings(BaseSettings):
    """The service's configuration."""

    model_config = SettingsConfigDict(env_prefix="GRADWATCH_", extra="ignore")

    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "GRADWATCH_REDIS_URL"),
    )
    # Every Redis key and every Celery queue of this deployment starts with it,
    # so several deployments (or test sessions) can share one Redis.
    namespace: str = Field("gradwatch", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    job_ttl_seconds: int = Field(7 * 24 * 3600, ge=60)
    # An Idempotency-Key names its job for this long after the first request.
    idempotency_ttl_seconds: int = Field(24 * 3600, ge=60)
    # Origins allowed to call the API from a browser (JSON list in the environment).
    # Unset: any origin in open mode; none with API keys, so no page can spend a key
    # it holds across origins (signed plot links load from anywhere all the same).
    cors_origins: list[str] | None = None
    # API keys as `[owner=]sha256:<hex>` entries, a JSON list or separated by commas
    # (`gradwatch keys new` makes one). None: open mode, every client is "anonymous".
    api_keys: Annotated[tuple[str, ...], NoDecode] = ()
    # Signs plot share links (HMAC-SHA256). Required with API keys; in open mode each
    # API process draws one at start, and its links die with it.
    share_secret: SecretStr | None = Field(None, min_length=MIN_SECRET_LENGTH)
    # When set, GET /metrics needs `Authorization: Bearer <token>` (Prometheus'
    # `authorization` scrape setting); unset, it is open, as the probes are. Not an API
    # key: a scraper sees counts across every owner and needs no owner's key.
    metrics_token: SecretStr | None = Field(None, min_length=MIN_METRICS_TOKEN_LENGTH)
    # Per owner, with API keys: requests that submit work per minute (sliding window),
    # and jobs queued or running at once.
    submissions_per_minute: int = Field(60, ge=1, le=1_000_000)
    max_active_jobs: int = Field(100, ge=1, le=1_000_000)
    # Per owner, read by the workers' dispatcher (core.store.dispatch): jobs running or on
    # their way to a worker at once; 0, no cap beyond the fair share every owner gets.
    max_running_jobs: int = Field(0, ge=0, le=1_000_000)
    # Seeds a remedy study (POST /v1/experiments/{id}/remedies) runs each configuration
    # over: the baseline and every fix, so one request makes up to (1 + fixes) x this jobs.
    remedy_max_seeds: int = Field(5, ge=1, le=MAX_SEEDS)
    job_soft_time_limit: int = Field(1800, ge=10)
    job_time_limit: int = Field(1860, ge=15)
    max_deliveries: int = Field(3, ge=1, le=20)
    # Workers beat this often; one silent for `worker_silent_seconds` is lost, and every
    # worker's reaper (each `reap_interval_seconds`) re-queues or fails what it was running.
    heartbeat_seconds: float = Field(5.0, gt=0, le=60)
    worker_silent_seconds: float = Field(30.0, gt=0, le=3600)
    reap_interval_seconds: float = Field(10.0, gt=0, le=600)
    # A study's children that share a graph are sent in groups of at most this many,
    # each group trained side by side (core.engine.ensemble); 1 trains every child alone.
    ensemble_members: int = Field(MAX_MEMBERS, ge=1, le=64)
    # A starting worker's pool process loads the engine, trains and draws `{}` and the
    # `tutorial` study (worker.training.warm_up_study), and only then does the worker
    # count as live (its first heartbeat); off, it counts as live at once and its first
    # job pays for all of that.
    warm_start: bool = True
    # A worker compiles XLA for a network in the background from its this-many-th job on
    # (core.engine.graph_cache.set_compile_after); 1: from its first, as soon as it is seen.
    xla_compile_after: int = Field(2, ge=1, le=1000)
    # The PNGs a worker draws as a job ends: the tutorial's two (weights, gradients), or
    # all; the API draws any other on its first request.
    eager_plots: Literal["tutorial", "all"] = "tutorial"
    # Each pool process draws those PNGs, and a study's, with a drawing helper beside it:
    # a process of its own that draws half of them at once (worker.drawing). Off, the pool
    # process draws them all (a host of one core gains nothing from the helper).
    drawing_helper: bool = True
    data_dir: str = "var"
    # Uploaded datasets (POST /v1/datasets), per owner with API keys and for everyone in
    # open mode: how many an owner keeps, the upload's size (its own cap, far above a
    # spec's 64 KiB), and what one may hold.
    datasets_per_owner: int = Field(20, ge=1, le=10_000)
    dataset_max_megabytes: int = Field(32, ge=1, le=1024)
    dataset_max_samples: int = Field(Limits.SAMPLES, ge=4, le=Limits.SAMPLES)
    dataset_max_features: int = Field(16_384, ge=1, le=Limits.DATA_VALUES)
    dataset_max_classes: int = Field(Limits.CLASSES, ge=2, le=Limits.CLASSES)
    # Event streams (SSE) open at once, per owner and per API process (429 / 503 past
    # them, with Retry-After: this many seconds); a silent stream sends a comment this
    # often so that proxies keep it open; one stream follows at most `max_stream_ids`
    # jobs and studies (GET /v1/events?ids=...).
    max_streams_per_owner: int = Field(100, ge=1, le=1_000_000)
    max_streams_per_process: int = Field(10_000, ge=1, le=1_000_000)
    stream_retry_after_seconds: int = Field(5, ge=1, le=3600)
    stream_heartbeat_seconds: float = Field(15.0, gt=0, le=300)
    max_stream_ids: int = Field(50, ge=1, le=1000)
    # PNGs rendered at other sizes than the default, cached across every job and study
    # (the oldest dropped past it); and renders one owner may ask the API to draw per
    # minute (429 with Retry-After past it; with API keys, per key owner).
    render_cache_megabytes: int = Field(256, ge=1, le=65_536)
    renders_per_minute: int = Field(120, ge=1, le=1_000_000)
    # A request body must keep arriving: nothing for `body_idle_seconds`, or less than
    # `body_min_bytes_per_second` on average after `body_grace_seconds`, is a 408.
    body_idle_seconds: float = Field(10.0, gt=0, le=600)
    body_min_bytes_per_second: float = Field(1024.0, ge=0, le=1e9)
    body_grace_seconds: float = Field(5.0, ge=0, le=600)
    # A request's line and headers must be complete within `header_timeout_seconds` of
    # the connection opening (or of the request's first byte on a kept-alive one) and
    # `header_max_bytes`: a 408 or 431, then the connection closed (api.head_deadline).
    header_timeout_seconds: float = Field(10.0, gt=0, le=600)
    header_max_bytes: int = Field(65_536, ge=4096, le=1 << 20)
    # Where clients reach the API (`https://gradwatch.example.com`, a path prefix allowed):
    # share links and plot URLs are absolute from it. Unset, they are absolute only for a
    # request whose Host is one of `public_hosts`, else paths: never from a Host header no
    # one vetted (`Host: evil.example` must not make a link to evil.example).
    public_url: str | None = Field(
        None, pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$"
    )
    public_hosts: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_api_keys(cls, value: Any) -> Any:
        value = _split_list(value)
        if isinstance(value, tuple):
            for entry in value:
                parse_key_entry(entry)  # a ValueError naming what is wrong
        return value

    @field_validator("public_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        value = _split_list(value)
        return tuple(host.lower() for host in value) if isinstance(value, tuple) else value

    @model_validator(mode="after")
    def _fit_together(self) -> Self:
        """Refuse settings that each pass alone but contradict each other, naming them all."""
        problems = []
        if self.job_time_limit < self.job_soft_time_limit + HARD_LIMIT_MARGIN:
            # The soft limit stops the job and records why; the hard one kills its
            # process, and a job killed first would end with no reason of its own.
            problems.append(
                f"GRADWATCH_JOB_TIME_LIMIT ({self.job_time_limit} s) must be at least "
                f"{HARD_LIMIT_MARGIN} s more than GRADWATCH_JOB_SOFT_TIME_LIMIT "
                f"({self.job_soft_time_limit} s): at the soft limit a job stops and says "
                "why, at the hard limit its process is killed"
            )
        if self.worker_silent_seconds < SILENT_BEATS * self.heartbeat_seconds:
            # A worker must miss several beats before it counts as lost, or a slow beat
            # would hand a healthy worker's job to another.
            problems.append(
                f"GRADWATCH_WORKER_SILENT_SECONDS ({self.worker_silent_seconds:g}) must be at "
                f"least {SILENT_BEATS} x GRADWATCH_HEARTBEAT_SECONDS "
                f"({self.heartbeat_seconds:g}): a worker counts as lost only after missing "
                "several heartbeats"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def auth_mode(self) -> str:
        """The auth mode: `keys` when API keys are configured, else `open`."""
        return "keys" if self.api_keys else "open"

    @property
    def allowed_origins(self) -> list[str]:
        """Browser origins allowed to call the API (see cors_origins)."""
        if self.cors_origins is not None:
            return self.cors_origins
        return [] if self.api_keys else ["*"]

    @property
    def dataset_max_bytes(self) -> int:
        """An upload's body cap, in bytes."""
        return self.dataset_max_megabytes * 1024 * 1024

    def queue_for(self, device: Device) -> str:
        """The Celery queue that trains on `device`: `cpu` or `gpu` in the default namespace."""
        name = device.value
        return name if self.namespace == "gradwatch" else f"{self.namespace}.{name}"


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
