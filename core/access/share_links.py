"""Signed, expiring links to one plot: a URL that shows the PNG without an API key.

The signature is an HMAC-SHA256, under the server's share secret, of
everything the link grants: what it points at (an experiment or a study, its
id), the plot, the exact size (width, height, dpi: the defaults filled in) and
the expiry (Unix seconds). Changing any of them, or the secret, breaks it. It
is carried as URL-safe base64 without padding:

    /v1/experiments/{id}/plots/{name}.png?expires=1767225600&sig=3q2-7w...

Example:
    >>> sig = sign_plot(b"k" * 32, PlotGrant("experiment", job_id, "weights", (960, 540, 100),
    ...                 expires=1767225600))
    >>> check_plot_signature(b"k" * 32, grant, sig, now=time.time())
    <ShareCheck.VALID: 'valid'>
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum

# Bumped if the signed message ever changes shape, so old links fail cleanly.
_VERSION = "gradwatch-share-v1"
_SIGNATURE = re.compile(r"^[A-Za-z0-9_-]{43}$")
MIN_SECRET_LENGTH = 32


class ShareCheck(StrEnum):
    """What a presented signature is worth."""

    VALID = "valid"
    EXPIRED = "expired"  # signed by us, but its time has passed
    INVALID = "invalid"  # not signed by us, or for something else


@dataclass(frozen=True, slots=True)
class PlotGrant:
    """What one link grants: a plot of one experiment or study, at one size, until `expires`."""

    kind: str  # "experiment" or "study"
    id: str
    name: str
    size: tuple[int, int, int]  # width, height, dpi
    expires: int  # Unix seconds

    def message(self) -> bytes:
        width, height, dpi = self.size
        fields = (_VERSION, self.kind, self.id, self.name, f"{width}x{height}@{dpi}")
        return "\n".join((*fields, str(self.expires))).encode()


def sign_plot(secret: bytes, grant: PlotGrant) -> str:
    """The signature of `grant` under `secret`."""
    digest = hmac.new(secret, grant.message(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def check_plot_signature(
    secret: bytes, grant: PlotGrant, signature: str, *, now: float
) -> ShareCheck:
    """Whether `signature` is ours for `grant`, and still in time."""
    if not _SIGNATURE.match(signature):
        return ShareCheck.INVALID
    if not hmac.compare_digest(sign_plot(secret, grant), signature):
        return ShareCheck.INVALID
    return ShareCheck.VALID if now <= grant.expires else ShareCheck.EXPIRED
