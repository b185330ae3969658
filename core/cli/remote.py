"""`gradwatch submit`, `study`, `remedies`, `status`, `download`: a remote service, by core.client.

    gradwatch submit SPEC.json --server URL [--key KEY] [--wait] [--out DIR]
    gradwatch study STUDY.json|--preset NAME --server URL [--wait] [--out DIR]
    gradwatch remedies ID [--fix FIX ...] [--seeds N] [--wait] [--out DIR]
    gradwatch status ID            an experiment's or a study's status
    gradwatch download ID --out DIR

The server defaults to `GRADWATCH_SERVER` (else http://127.0.0.1:8000) and the
key to `GRADWATCH_API_KEY` (an environment variable keeps it out of `ps`). The
id goes to standard output, progress and messages to standard error. `--out`
waits, then writes what `gradwatch run` writes: result.json, every plot and
arrays.npz (for a study: summary.json, summary.csv and its plots).

The exit status says how it went (`Exit`), so a script can branch on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Any

from core.cli.progress import ProgressBar, outcome
from core.client import (
    BadRequestError,
    Client,
    ClientError,
    ConflictError,
    Event,
    Job,
    NotFoundError,
    ProblemError,
    Study,
    UnauthorizedError,
)

DEFAULT_SERVER = "http://127.0.0.1:8000"


class Exit(IntEnum):
    """The exit statuses of the remote commands."""

    OK = 0  # done: it succeeded (or, without --wait, it was accepted)
    FAILED = 1  # the experiment or study failed
    USAGE = 2  # bad arguments, or a spec file that cannot be read as JSON
    REFUSED = 3  # the service refused the request (400, 409, 413, 415, 422): its reasons printed
    NOT_FOUND = 4  # no such experiment, study or dataset (or none this key may see)
    UNAUTHORIZED = 5  # no key, or one the service does not know
    UNAVAILABLE = 6  # no answer, or 503/429 still after the retries: try again later
    CANCELLED = 7  # it was cancelled
    UNFINISHED = 8  # `status`: still queued or running


_BY_STATUS = {"succeeded": Exit.OK, "failed": Exit.FAILED, "cancelled": Exit.CANCELLED}


def exit_for(status: str) -> Exit:
    """The exit status for a job's or study's status."""
    return _BY_STATUS.get(status, Exit.UNFINISHED)


def server_options(*, progress: bool = True) -> argparse.ArgumentParser:
    """The options every remote command takes: --server, --key (and --quiet for a
    command that may show progress)."""
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--server",
        default=os.environ.get("GRADWATCH_SERVER", DEFAULT_SERVER),
        help="the service's URL, with any path prefix (default: $GRADWATCH_SERVER or "
        f"{DEFAULT_SERVER})",
    )
    server.add_argument(
        "--key", default=os.environ.get("GRADWATCH_API_KEY"), help="API key ($GRADWATCH_API_KEY)"
    )
    if progress:
        server.add_argument("--quiet", action="store_true", help="no progress bar")
    return server


def register(commands: Any) -> None:
    """Add the remote subcommands to `gradwatch`'s subparsers."""
    server = server_options()
    following = argparse.ArgumentParser(add_help=False, parents=[server])
    following.add_argument("--wait", action="store_true", help="wait until it ends")
    following.add_argument("--out", help="wait, then write its files into this folder")

    submit = commands.add_parser(
        "submit", parents=[following], help="queue an experiment on a service"
    )
    submit.add_argument("spec", help="spec JSON file, - for stdin")
    submit.set_defaults(func=guarded(submit_command))

    study = commands.add_parser("study", parents=[following], help="queue a study on a service")
    body = study.add_mutually_exclusive_group(required=True)
    body.add_argument("body", nargs="?", help="study JSON file (base, axes, seeds), - for stdin")
    body.add_argument("--preset", help="a preset study's name (GET /v1/presets)")
    study.set_defaults(func=guarded(study_command))

    remedies = commands.add_parser(
        "remedies", parents=[following], help="prove a finished run's prescriptions in a study"
    )
    remedies.add_argument("id", help="the experiment whose prescriptions to try")
    remedies.add_argument(
        "--fix", action="append", help="a prescribed fix to try (repeat; default: all)"
    )
    remedies.add_argument("--seeds", type=int, help="seeds per configuration (default: 3)")
    remedies.set_defaults(func=guarded(remedies_command))

    status = commands.add_parser(
        "status", parents=[server], help="an experiment's or a study's status"
    )
    status.add_argument("id")
    status.add_argument("--json", action="store_true", help="print the whole record as JSON")
    status.set_defaults(func=guarded(status_command))

    download = commands.add_parser(
        "download", parents=[server], help="write a finished experiment's or study's files"
    )
    download.add_argument("id")
    download.add_argument("--out", help="folder (default: the id)")
    download.set_defaults(func=guarded(download_command))


def guarded(command: Callable[[argparse.Namespace, Client], Exit]) -> Any:
    """`command` with a client, and each error the service answers turned into its Exit."""

    def run(args: argparse.Namespace) -> int:
        try:
            with Client(args.server, key=args.key) as client:
                return int(command(args, client))
        except ProblemError as error:
            print(f"gradwatch: {error}", file=sys.stderr)
            return int(_exit_for_error(error))
        except ClientError as error:
            print(f"gradwatch: {error}", file=sys.stderr)
            return int(Exit.UNAVAILABLE)
        except (OSError, ValueError) as error:  # a file to send: unreadable, or not JSON
            print(f"gradwatch: {error}", file=sys.stderr)
            return int(Exit.USAGE)

    return run


def _exit_for_error(error: ProblemError) -> Exit:
    if isinstance(error, BadRequestError | ConflictError):
        return Exit.REFUSED
    if isinstance(error, NotFoundError):
        return Exit.NOT_FOUND
    if isinstance(error, UnauthorizedError):
        return Exit.UNAUTHORIZED
    return Exit.UNAVAILABLE


def _read_json(path: str) -> dict[str, Any]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    body = json.loads(text or "{}")
    if not isinstance(body, dict):
        raise ValueError(f"{path}: a spec is a JSON object")
    return body


# ------------------------------------------------------------------ experiments


def submit_command(args: argparse.Namespace, client: Client) -> Exit:
    job = client.submit(_read_json(args.spec))
    print(job["id"], flush=True)
    if not (args.wait or args.out):
        return Exit.OK
    job = client.wait(job["id"], on_event=None if args.quiet else _job_progress())
    _report_job(job)
    if args.out and job["status"] == "succeeded":
        written = download_job(client, job["id"], Path(args.out))
        print(f"wrote {len(written)} files to {args.out}", file=sys.stderr)
    return exit_for(job["status"])


def _job_progress() -> Callable[[Event], None]:
    bar = ProgressBar(sys.stderr)

    def show(event: Event) -> None:
        if event.type == "progress":
            data = event.data
            bar.on_epoch_end(data["epoch"], data["epochs"], data)
        elif event.final:
            bar.on_train_end({})

    return show


def _report_job(job: Job) -> None:
    summary = job["summary"]
    if summary is not None:
        figures = outcome(
            summary.get("loss"), summary.get("accuracy"), summary.get("baseline_loss")
        )
        print(f"{job['status']}: {figures}", file=sys.stderr)
        print(f"verdict: {', '.join(summary.get('verdicts', []))}", file=sys.stderr)
    else:
        error = job["error"] or {}
        reason = f" ({error.get('type')}: {error.get('message')})" if error else ""
        print(f"{job['status']}{reason}", file=sys.stderr)


def download_job(client: Client, job_id: str, out: Path) -> list[Path]:
    """result.json, every plot and (when captured) arrays.npz into `out`; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {"result.json": client.result_bytes(job_id)}
    for link in client.plots(job_id):
        files[f"{link['name']}.png"] = client.plot(job_id, link["name"])
    arrays = client.arrays(job_id)
    if arrays is not None:
        files["arrays.npz"] = arrays
    return _write(out, files)


def _write(out: Path, files: dict[str, bytes]) -> list[Path]:
    """Each file into `out` itself: a name the server sent never leaves that folder."""
    written = []
    for name, content in files.items():
        if Path(name).name != name or name.startswith("."):
            raise ValueError(f"refusing to write {name!r}: not a plain file name")
        path = out / name
        path.write_bytes(content)
        written.append(path)
    return written


# ---------------------------------------------------------------------- studies


def study_command(args: argparse.Namespace, client: Client) -> Exit:
    body = {"preset": args.preset} if args.preset else _read_json(args.body)
    return _follow_study(args, client, client.submit_study(body))


def remedies_command(args: argparse.Namespace, client: Client) -> Exit:
    study = client.prove_remedies(args.id, fixes=args.fix, seeds=args.seeds)
    return _follow_study(args, client, study)


def _follow_study(args: argparse.Namespace, client: Client, study: Study) -> Exit:
    """Print the queued study's id; with --wait or --out, follow it and write its files."""
    print(study["id"], flush=True)
    if not (args.wait or args.out):
        return Exit.OK
    progress = study["progress"]
    study = client.wait_study(
        study["id"], on_event=None if args.quiet else _study_progress(progress["children"])
    )
    _report_study(study)
    if args.out and study["summary"] is not None:
        written = download_study(client, study["id"], Path(args.out))
        print(f"wrote {len(written)} files to {args.out}", file=sys.stderr)
    return exit_for(study["status"])


def _study_progress(children: int) -> Callable[[Event], None]:
    bar = ProgressBar(sys.stderr)
    finished: set[str] = set()

    def show(event: Event) -> None:
        data = event.data
        if event.type == "child" and data.get("status") in ("succeeded", "failed", "cancelled"):
            finished.add(str(data.get("child")))
            bar.draw(len(finished), children, "experiments finished")
        elif event.final:
            bar.on_train_end({})

    return show


def _report_study(study: Study) -> None:
    """How the study ended, child by child: the counts add up to its children."""
    progress = study["progress"]
    counts = (
        f"{progress['succeeded']} succeeded, {progress['failed']} failed, "
        f"{progress['cancelled']} cancelled"
    )
    if progress["missing"]:  # deleted or expired: neither succeeded, failed nor cancelled
        counts += f", {progress['missing']} missing"
    print(f"{study['status']}: {counts} of {progress['children']}", file=sys.stderr)


def download_study(client: Client, study_id: str, out: Path) -> list[Path]:
    """summary.json, summary.csv and every plot of a finished study into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    summary = client.study_summary(study_id)
    files = {
        "summary.json": json.dumps(summary, indent=2).encode(),
        "summary.csv": client.study_summary_csv(study_id).encode(),
    }
    for link in client.study_plots(study_id):
        files[f"{link['name']}.png"] = client.study_plot(study_id, link["name"])
    return _write(out, files)


# --------------------------------------------------------------- either, by id


def _find(client: Client, some_id: str) -> tuple[str, Job | Study]:
    """("experiment", its record) or ("study", its record): ids of both are ULIDs."""
    try:
        return "experiment", client.get(some_id)
    except NotFoundError:
        return "study", client.study(some_id)


def status_command(args: argparse.Namespace, client: Client) -> Exit:
    kind, record = _find(client, args.id)
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        progress: Any = record["progress"]
        if kind == "experiment":
            done = f"epoch {progress['epoch']}/{progress['epochs']}"
        else:
            done = f"{progress['finished']}/{progress['children']} experiments finished"
        print(f"{kind} {record['id']} {record['status']} ({done})")
    return exit_for(record["status"])


def download_command(args: argparse.Namespace, client: Client) -> Exit:
    kind, record = _find(client, args.id)
    out = Path(args.out or args.id)
    if kind == "experiment":
        written = download_job(client, args.id, out)
    else:
        written = download_study(client, args.id, out)
    print(f"wrote {len(written)} files to {out}", file=sys.stderr)
    return exit_for(record["status"])
