"""API keys: how one is made, kept only as a hash, and checked (`gradwatch keys` makes them).

A key is a random token (`gw_` and 43 URL-safe characters: 256 bits) handed to
its client once. The service keeps only its SHA-256, as one entry of
`GRADWATCH_API_KEYS` (a JSON list, or entries separated by commas):

    [owner=]sha256:<64 hex digits>

The owner names whose jobs a key sees. Keys with the same owner share their
jobs (an old key and its replacement while clients move over, say); an entry
without one is an owner of its own, `key-<the first 12 hex digits of its hash>`.
A plain SHA-256 is enough because a key is a random 256-bit token, not a
password: its hash gives nothing away, and no dictionary holds it.

Example:
    $ gradwatch keys new --owner alice
    key:   gw_1Xb...            give this to the client (it is shown once, stored nowhere)
    entry: alice=sha256:5e8...  add this to GRADWATCH_API_KEYS
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

ANONYMOUS = "anonymous"
"""The owner of every job in open mode (no keys configured)."""

KEY_PREFIX = "gw_"
# Longer presented keys are refused before hashing: no key this module makes is near it.
MAX_KEY_LENGTH = 256
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENTRY = re.compile(r"^(?:(?P<owner>[^=]+)=)?sha256:(?P<digest>[0-9a-fA-F]{64})$")


class InvalidKeyEntry(ValueError):  # noqa: N818 - reads as what it reports
    """A GRADWATCH_API_KEYS entry that is not `[owner=]sha256:<64 hex digits>`."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One configured key: the owner it acts for and the SHA-256 of the key."""

    owner: str
    digest: bytes


def new_api_key() -> str:
    """A fresh random key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The hex SHA-256 of `key`, as an entry holds it."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_entry(key: str, owner: str | None = None) -> str:
    """The GRADWATCH_API_KEYS entry for `key`, acting for `owner` (default: its own)."""
    if owner is not None:
        check_owner(owner)
    prefix = f"{owner}=" if owner else ""
    return f"{prefix}sha256:{hash_key(key)}"


def check_owner(owner: str) -> str:
    """`owner`, when it can name an owner: letters, digits, `_.-`, at most 64; not anonymous."""
    if not _OWNER.match(owner):
        raise InvalidKeyEntry(
            f"owner {owner!r}: use 1-64 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit"
        )
    if owner == ANONYMOUS:
        raise InvalidKeyEntry(f"owner {owner!r} is reserved for open mode")
    return owner


def parse_key_entry(text: str) -> KeyEntry:
    """A `[owner=]sha256:<hex>` entry; raises InvalidKeyEntry."""
    match = _ENTRY.match(text.strip())
    if match is None:
        raise InvalidKeyEntry(
            "an API key entry is [owner=]sha256:<64 hex digits> (make one with "
            f"`gradwatch keys new`), not {text[:20]!r}..."
        )
    hex_digest = match["digest"].lower()
    owner = match["owner"]
    return KeyEntry(
        owner=check_owner(owner) if owner is not None else f"key-{hex_digest[:12]}",
        digest=bytes.fromhex(hex_digest),
    )


class Keyring:
    """The configured keys; empty means open mode."""

    def __init__(self, entries: Iterable[KeyEntry]) -> None:
        self.entries = tuple(entries)

    @classmethod
    def from_entries(cls, texts: Iterable[str]) -> Keyring:
        """From GRADWATCH_API_KEYS entries; raises InvalidKeyEntry."""
        return cls(parse_key_entry(text) for text in texts)

    @property
    def open(self) -> bool:
        """True when no key is configured: every client is the anonymous owner."""
        return not self.entries

    @property
    def owners(self) -> frozenset[str]:
        return frozenset(entry.owner for entry in self.entries)

    def owner_of(self, key: str | None) -> str | None:
        """The owner `key` acts for, or None for a missing or unknown key.

        Every entry is compared, in constant time, whatever matched: how long this
        takes says nothing about which entry, if any, was close.
        """
        if not key or len(key) > MAX_KEY_LENGTH:
            return None
        digest = hashlib.sha256(key.encode()).digest()
        owner = None
        for entry in self.entries:
            if hmac.compare_digest(entry.digest, digest):
                owner = entry.owner
        return owner
