"""API keys: made random, kept as hashes, checked whatever the entry; `gradwatch keys`."""

from __future__ import annotations

import io

import pytest

from core.access.api_keys import (
    ANONYMOUS,
    InvalidKeyEntry,
    Keyring,
    hash_key,
    key_entry,
    new_api_key,
    parse_key_entry,
)
from core.cli import main
from core.settings import Settings


def test_new_keys_are_random_and_long() -> None:
    keys = {new_api_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(key.startswith("gw_") and len(key) == 46 for key in keys)


def test_an_entry_holds_the_hash_never_the_key() -> None:
    key = new_api_key()
    entry = key_entry(key, "alice")

    assert entry == f"alice=sha256:{hash_key(key)}" and key not in entry
    parsed = parse_key_entry(entry)
    assert parsed.owner == "alice" and parsed.digest.hex() == hash_key(key)


def test_an_entry_without_owner_is_an_owner_of_its_own() -> None:
    key = new_api_key()
    assert parse_key_entry(key_entry(key)).owner == f"key-{hash_key(key)[:12]}"


@pytest.mark.parametrize(
    "entry",
    [
        "abc",
        "sha256:1234",
        "md5:" + "a" * 64,
        "sha256:" + "g" * 64,
        "al:ice=sha256:" + "a" * 64,
        f"{ANONYMOUS}=sha256:" + "a" * 64,
        "=sha256:" + "a" * 64,
    ],
)
def test_bad_entries_are_refused(entry: str) -> None:
    with pytest.raises(InvalidKeyEntry):
        parse_key_entry(entry)


def test_keyring_finds_the_owner_of_a_key() -> None:
    alice, alice_new, bob = new_api_key(), new_api_key(), new_api_key()
    ring = Keyring.from_entries(
        [key_entry(alice, "alice"), key_entry(alice_new, "alice"), key_entry(bob, "bob")]
    )

    assert not ring.open and ring.owners == {"alice", "bob"}
    assert ring.owner_of(alice) == ring.owner_of(alice_new) == "alice"
    assert ring.owner_of(bob) == "bob"
    for stranger in (None, "", new_api_key(), hash_key(alice), "x" * 10_000):
        assert ring.owner_of(stranger) is None
    assert Keyring([]).open


def test_settings_read_entries_as_json_or_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = key_entry(new_api_key(), "a"), key_entry(new_api_key())
    monkeypatch.setenv("GRADWATCH_API_KEYS", f" {first} ,{second},")
    assert Settings().api_keys == (first, second)
    monkeypatch.setenv("GRADWATCH_API_KEYS", f'["{first}"]')
    assert Settings().api_keys == (first,)
    monkeypatch.setenv("GRADWATCH_API_KEYS", "not-an-entry")
    with pytest.raises(ValueError, match="sha256"):
        Settings()


def test_settings_pick_the_mode_and_its_cors_default() -> None:
    open_mode = Settings(api_keys=())
    keys_mode = Settings(api_keys=(key_entry(new_api_key()),))

    assert (open_mode.auth_mode, open_mode.allowed_origins) == ("open", ["*"])
    assert (keys_mode.auth_mode, keys_mode.allowed_origins) == ("keys", [])
    assert Settings(api_keys=(), cors_origins=["https://a.example"]).allowed_origins == [
        "https://a.example"
    ]


def test_keys_new_prints_a_key_and_its_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "--owner", "alice"]) == 0
    lines = capsys.readouterr().out.splitlines()
    key = lines[0].removeprefix("key:   ")
    assert lines[1] == f"entry: {key_entry(key, 'alice')}"
    assert Keyring.from_entries([lines[1].removeprefix("entry: ")]).owner_of(key) == "alice"

    assert main(["keys", "new", "--owner", "no spaces"]) == 2


def test_keys_hash_reads_the_key_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("gw_abc\n"))
    assert main(["keys", "hash", "--owner", "ci"]) == 0
    assert capsys.readouterr().out.strip() == key_entry("gw_abc", "ci")


def test_a_share_secret_must_be_long() -> None:
    with pytest.raises(ValueError, match="share_secret"):
        Settings(share_secret="too-short")
    assert Settings(share_secret="s" * 32).share_secret is not None
