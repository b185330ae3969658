"""`gradwatch datasets`: upload, list, show and delete your own data on a service.

    gradwatch datasets upload FILE [--label COL] [--task classification|regression] [--name NAME]
    gradwatch datasets list
    gradwatch datasets show ID
    gradwatch datasets delete ID

Built on core.client as `submit` and the other remote commands are (core.cli.remote):
the same --server and --key, the same exit statuses (`Exit`), the service's reasons
printed beside the field they name (for a bad file: its row and column, or its array).
`upload` prints the dataset's id on standard output, so a script can train on it:

    DS=$(gradwatch datasets upload houses.csv --label price --task regression)

`--json` prints the service's records as JSON instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, cast

from core.cli.remote import Exit, guarded, server_options
from core.client import Client, Dataset

TASKS = ("classification", "regression")


def register(commands: Any) -> None:
    """Add `gradwatch datasets upload|list|show|delete` to `gradwatch`'s subparsers."""
    server = server_options(progress=False)
    server.add_argument("--json", action="store_true", help="print the service's JSON")
    datasets = commands.add_parser("datasets", help="your own data on a service: upload, list, ...")
    actions = datasets.add_subparsers(dest="datasets_command", required=True)

    upload = actions.add_parser(
        "upload", parents=[server], help="keep a CSV or NPZ on the service; print its id"
    )
    upload.add_argument(
        "file", help="a CSV (header row, a label column) or an NPZ (x, y); - for stdin"
    )
    upload.add_argument("--label", default="label", help="a CSV's label column (default: label)")
    upload.add_argument(
        "--task",
        choices=TASKS,
        default="classification",
        help="labels are classes, or numbers to fit (default: classification)",
    )
    upload.add_argument("--name", help="what results and plots call it (default: the file's name)")
    upload.set_defaults(func=guarded(upload_command))

    listing = actions.add_parser("list", parents=[server], help="your datasets, newest first")
    listing.set_defaults(func=guarded(list_command))

    show = actions.add_parser("show", parents=[server], help="one dataset's shape, classes, size")
    show.add_argument("id")
    show.set_defaults(func=guarded(show_command))

    delete = actions.add_parser(
        "delete",
        parents=[server],
        help="delete one (refused while a queued or running job uses it)",
    )
    delete.add_argument("id")
    delete.set_defaults(func=guarded(delete_command))


def upload_command(args: argparse.Namespace, client: Client) -> Exit:
    if args.file == "-":
        content, filename = sys.stdin.buffer.read(), "stdin"
    else:
        content, filename = Path(args.file).read_bytes(), Path(args.file).name
    dataset = client.upload_dataset(
        content, filename, label=args.label, task=args.task, name=args.name
    )
    if args.json:
        print(json.dumps(dataset, indent=2))
    else:
        print(dataset["id"], flush=True)
        print(f"{dataset['name']}: {_shape(dataset)}; {_task(dataset)}", file=sys.stderr)
    return Exit.OK


def list_command(args: argparse.Namespace, client: Client) -> Exit:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = client.datasets(cursor=cursor)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    if args.json:
        print(json.dumps(items, indent=2))
        return Exit.OK
    for item in items:
        dataset = cast(Dataset, item)
        print(f"{dataset['id']}  {dataset['name']}  {_shape(dataset)}  {_task(dataset)}")
    if not items:
        print("no datasets", file=sys.stderr)
    return Exit.OK


def show_command(args: argparse.Namespace, client: Client) -> Exit:
    dataset = client.dataset(args.id)
    if args.json:
        print(json.dumps(dataset, indent=2))
        return Exit.OK
    label = f", label column {dataset['label']!r}" if dataset["label"] is not None else ""
    lines = {
        "id": dataset["id"],
        "name": dataset["name"],
        "format": f"{dataset['format']}{label}",
        "task": _task(dataset),
        "samples": _shape(dataset),
        "size": f"{dataset['size']} bytes uploaded, {dataset['stored_size']} kept",
        "sha256": dataset["content_hash"],
        "created": dataset["created_at"],
    }
    for name, value in lines.items():
        print(f"{name + ':':9}{value}")
    return Exit.OK


def delete_command(args: argparse.Namespace, client: Client) -> Exit:
    client.delete_dataset(args.id)
    print(f"deleted dataset {args.id}", file=sys.stderr)
    return Exit.OK


def _shape(dataset: Dataset) -> str:
    shape = "x".join(str(size) for size in dataset["sample_shape"])
    return f"{dataset['samples']} samples of {shape}"


def _task(dataset: Dataset) -> str:
    classes = dataset["classes"]
    if classes is not None:
        return f"classification, {len(classes)} classes: {', '.join(classes)}"
    target = dataset["target_range"]
    return f"regression, targets {target[0]:g} to {target[1]:g}" if target else "regression"
