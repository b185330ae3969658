"""Settings read from the environment, validated once, shared by api and worker.

Every variable is prefixed `GRADWATCH_` except `REDIS_URL`, the one most
deployments set. Defaults are safe for development on one machine.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.spec import Device


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
    # Origins allowed to call the API from a browser (JSON list in the environment);
    # plots and records carry no secrets, so any origin may embed them by default.
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    job_soft_time_limit: int = Field(1800, ge=10)
    job_time_limit: int = Field(1860, ge=15)
    max_deliveries: int = Field(3, ge=1, le=20)
    data_dir: str = "var"

    def queue_for(self, device: Device) -> str:
        """The Celery queue that trains on `device`: `cpu` or `gpu` in the default namespace."""
        name = device.value
        return name if self.namespace == "gradwatch" else f"{self.namespace}.{name}"


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
