"""Who may do what: API keys, owners, per-owner limits and signed plot links.

Open mode (no `GRADWATCH_API_KEYS`): every request acts for the anonymous
owner, sees every job, and no per-owner limit applies; the API says so in its
log at start and in /readyz (`"auth": "open"`).

Keys mode: every request under /v1 but the presets, the verdicts and a signed plot link
needs a key, as `Authorization: Bearer <key>` or `X-API-Key: <key>`; a missing
or unknown key is a 401. A request sees only its owner's jobs: another owner's
job is a 404 with the very body of an unknown one. Submissions are limited per
owner (a 429 with Retry-After naming the limit), and stored results and plots
are `private` to caches.

A signed link (`?expires=...&sig=...`, see core.access.share_links) shows one plot at
one size until it expires, with no key: what an `<img>` on another site needs.
A bad or expired signature is a 403 (checked before anything is looked up, so
it says nothing about whether the job exists).

Probes need no key in either mode (a Kubernetes probe cannot send one): /healthz
says the process is up; /readyz whether Redis answers and how many workers each
queue has, and names the workers' hosts only to a request with a valid key (open
mode: to anyone). /metrics shows counts across every owner and no ids or hosts; it
is open unless `GRADWATCH_METRICS_TOKEN` is set, then it needs that token as
`Authorization: Bearer <token>` (an API key does not do).
"""

from __future__ import annotations

import hmac
import logging
import math
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from api.errors import Problem
from api.responses import IMMUTABLE
from core.access.api_keys import ANONYMOUS, Keyring
from core.access.share_links import (
    MIN_SECRET_LENGTH,
    PlotGrant,
    ShareCheck,
    check_plot_signature,
    sign_plot,
)
from core.settings import Settings
from core.store.admission import Refusal

# uvicorn configures this logger, so the lines show at its default level.
logger = logging.getLogger("uvicorn.error")

PRIVATE_IMMUTABLE = "private, max-age=31536000, immutable"
# A cache may keep a signed PNG no longer than its link lives, and at most this long.
MAX_SHARED_CACHE_SECONDS = 365 * 24 * 3600
SHARE_DEFAULT_SECONDS = 7 * 24 * 3600
SHARE_MAX_SECONDS = 90 * 24 * 3600
SHARE_MIN_SECONDS = 60


class UnsafeSettingsError(RuntimeError):
    """Settings the API refuses to start with."""


@dataclass(frozen=True, slots=True)
class Access:
    """The keys, the share secret and the per-owner limits of one API process."""

    keyring: Keyring
    share_secret: bytes
    submissions_per_minute: int
    max_active_jobs: int
    secret_drawn: bool = False  # True when no secret was set and one was drawn at start
    metrics_token: bytes | None = None  # None: /metrics is open

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        """From the settings; raises UnsafeSettingsError for keys without a share secret."""
        keyring = Keyring.from_entries(settings.api_keys)
        secret = settings.share_secret.get_secret_value() if settings.share_secret else None
        if secret is None and not keyring.open:
            raise UnsafeSettingsError(
                "API keys are set (GRADWATCH_API_KEYS) but GRADWATCH_SHARE_SECRET is not: set "
                f"it to a random string of at least {MIN_SECRET_LENGTH} characters, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return cls(
            keyring=keyring,
            share_secret=(secret or secrets.token_urlsafe(32)).encode(),
            submissions_per_minute=settings.submissions_per_minute,
            max_active_jobs=settings.max_active_jobs,
            secret_drawn=secret is None,
            metrics_token=(
                settings.metrics_token.get_secret_value().encode()
                if settings.metrics_token
                else None
            ),
        )

    @property
    def open(self) -> bool:
        return self.keyring.open

    @property
    def mode(self) -> str:
        """`open` or `keys`, as /readyz reports it."""
        return "open" if self.open else "keys"

    @property
    def immutable(self) -> str:
        """Cache-Control of a stored result or plot: shared caches may keep it in open mode only."""
        return IMMUTABLE if self.open else PRIVATE_IMMUTABLE

    def owner_for(self, authorization: str | None, api_key: str | None) -> str | None:
        """The owner a request acts for, from its headers; None: no valid key (keys mode)."""
        if self.open:
            return ANONYMOUS
        return self.keyring.owner_of(presented_key(authorization, api_key))

    def reader(self, owner: str) -> str | None:
        """Whose records `owner` may read, as the store's owned reads take it: None, every
        owner's (open mode)."""
        return None if self.open else owner

    def may_see(self, owner: str, job_owner: str | None) -> bool:
        """True when `owner` may see a job owned by `job_owner` (None: no such job)."""
        return job_owner is not None and (self.open or job_owner == owner)

    def log_mode(self) -> None:
        """Say at start how requests are let in."""
        if self.open:
            logger.warning(
                "auth: OPEN - no API keys are configured (GRADWATCH_API_KEYS), so any client "
                "can read, cancel and delete every job, without limits"
            )
        else:
            logger.info(
                "auth: keys - %d API keys for %d owners; per owner %d submissions a minute "
                "and %d jobs queued or running",
                len(self.keyring.entries),
                len(self.keyring.owners),
                self.submissions_per_minute,
                self.max_active_jobs,
            )
        if self.metrics_token is None and not self.open:
            logger.info(
                "metrics: /metrics is open (job counts across owners, no ids or hosts); set "
                "GRADWATCH_METRICS_TOKEN to require a bearer token"
            )
        if self.secret_drawn:
            logger.warning(
                "share links are signed with a secret drawn at start (GRADWATCH_SHARE_SECRET "
                "is not set): they work only on this process, until it stops"
            )

    def may_scrape(self, token: str | None) -> bool:
        """True when /metrics may answer: no token is configured, or `token` is it."""
        if self.metrics_token is None:
            return True
        return token is not None and hmac.compare_digest(token.encode(), self.metrics_token)

    # ----------------------------------------------------------------- share links

    def share_query(self, grant: PlotGrant, asked: dict[str, int]) -> str:
        """The query string of a signed link: the sizes asked, the expiry, the signature."""
        return urlencode(
            {**asked, "expires": grant.expires, "sig": sign_plot(self.share_secret, grant)}
        )

    def check_share(self, grant: PlotGrant, signature: str | None) -> str:
        """The Cache-Control for a valid signed link; raises a 403 problem otherwise."""
        now = time.time()
        outcome = ShareCheck.INVALID
        if signature is not None:
            outcome = check_plot_signature(self.share_secret, grant, signature, now=now)
        if outcome is ShareCheck.EXPIRED:
            raise Problem(
                403,
                "Link expired",
                "this share link has expired; ask for a new one",
                kind="link-expired",
            )
        if outcome is not ShareCheck.VALID:
            raise Problem(
                403,
                "Invalid link",
                "the share link's signature does not match what it shows",
                kind="invalid-link",
            )
        lifetime = min(MAX_SHARED_CACHE_SECONDS, max(0, math.floor(grant.expires - now)))
        return f"public, max-age={lifetime}, immutable"


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The key a request presents: `Authorization: Bearer <key>`, else `X-API-Key`."""
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return api_key.strip() if api_key else None


def unauthorized() -> Problem:
    """401 for a request without a valid key."""
    return Problem(
        401,
        "Unauthorized",
        "send a valid API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
        kind="unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="gradwatch"'},
    )


def metrics_unauthorized() -> Problem:
    """401 for /metrics without the configured metrics token."""
    return Problem(
        401,
        "Unauthorized",
        "send the metrics token (GRADWATCH_METRICS_TOKEN) as 'Authorization: Bearer <token>'",
        kind="unauthorized",
        headers={"WWW-Authenticate": 'Bearer realm="gradwatch-metrics"'},
    )


def limit_refused(refusal: Refusal, access: Access) -> Problem:
    """429 naming the per-owner limit that refused a submission, with Retry-After."""
    retry_after = str(max(1, math.ceil(refusal.retry_after)))
    if refusal.limit == "submissions_per_minute":
        value = access.submissions_per_minute
        detail = f"over the limit of {value} submissions a minute for this API key's owner"
    else:
        value = access.max_active_jobs
        detail = (
            f"this API key's owner has {refusal.active} jobs queued or running, and the limit "
            f"is {value}; wait for some to finish or cancel them"
        )
    return Problem(
        429,
        "Too Many Requests",
        detail,
        kind="limit-reached",
        headers={"Retry-After": retry_after},
        limit=refusal.limit,
        limit_value=value,
    )
