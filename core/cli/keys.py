"""`gradwatch keys`: make an API key and its GRADWATCH_API_KEYS entry (core.access.api_keys).

gradwatch keys new [--owner NAME]     a new key, printed once, and its entry
gradwatch keys hash [--owner NAME]    the entry of a key read from standard input
"""

from __future__ import annotations

import argparse
import sys

from core.access.api_keys import InvalidKeyEntry, key_entry, new_api_key


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `gradwatch keys new` and `gradwatch keys hash`."""
    keys = subparsers.add_parser("keys", help="make API keys and their GRADWATCH_API_KEYS entries")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    new = actions.add_parser("new", help="make a key; print it and its entry")
    new.add_argument("--owner", help="whose jobs the key sees (default: a name of its own)")
    new.set_defaults(func=_new_command)
    hashed = actions.add_parser("hash", help="print the entry of a key read from standard input")
    hashed.add_argument("--owner", help="whose jobs the key sees (default: a name of its own)")
    hashed.set_defaults(func=_hash_command)


def _new_command(args: argparse.Namespace) -> int:
    key = new_api_key()
    try:
        entry = key_entry(key, args.owner)
    except InvalidKeyEntry as error:
        print(f"gradwatch: {error}", file=sys.stderr)
        return 2
    print(f"key:   {key}")
    print(f"entry: {entry}")
    print(
        "Give the key to its client (send it as 'Authorization: Bearer <key>'); it is not "
        "stored anywhere.\nAdd the entry to GRADWATCH_API_KEYS.",
        file=sys.stderr,
    )
    return 0


def _hash_command(args: argparse.Namespace) -> int:
    key = sys.stdin.readline().strip()
    if not key:
        print("gradwatch: give the key on standard input", file=sys.stderr)
        return 2
    try:
        print(key_entry(key, args.owner))
    except InvalidKeyEntry as error:
        print(f"gradwatch: {error}", file=sys.stderr)
        return 2
    return 0
