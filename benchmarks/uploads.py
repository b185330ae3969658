"""What an upload costs the API: reading and checking a dataset file, and packing it.

The largest CSV the default limits take (20,000 rows, here 50 feature columns
and a named class) and an NPZ of 20,000 16x16 images are parsed by
`core.datasets.uploaded.parse_dataset`, beside NumPy's own reader of the same
bytes (`np.loadtxt`, `np.load`: no checks, no names of a bad cell) in the same
run, each the best of `--repeat`; then packed as the store keeps them.

Run:

    .venv/bin/python benchmarks/uploads.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from core.datasets.uploaded import UploadLimits, pack, parse_dataset

LIMITS = UploadLimits(samples=20_000, features=16_384, classes=20, values=20_000_000)


def best(repeat: int, run: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def csv_body(rows: int, columns: int) -> bytes:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(rows, columns))
    header = ",".join(f"f{i}" for i in range(columns)) + ",label\n"
    lines = (",".join(f"{v:.5f}" for v in row) + f",c{i % 5}" for i, row in enumerate(x))
    return (header + "\n".join(lines) + "\n").encode()


def npz_body(samples: int, size: int) -> bytes:
    rng = np.random.default_rng(2)
    out = io.BytesIO()
    np.savez(out, x=rng.normal(size=(samples, size, size, 1)).astype(np.float32),
             y=np.arange(samples) % 10)  # fmt: skip
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    csv = csv_body(20_000, 50)
    npz = npz_body(20_000, 16)
    numeric = csv.replace(b",c", b",")  # np.loadtxt takes numbers only

    print(f"{'file':<28} {'bytes':>11} {'parse_dataset':>14} {'numpy reader':>13} "
          f"{'pack':>7} {'packed bytes':>13}")  # fmt: skip
    for name, body, baseline in [
        ("CSV 20,000 x 50 + label", csv, lambda: np.loadtxt(io.BytesIO(numeric), delimiter=",",
                                                            skiprows=1)),
        ("NPZ 20,000 x 16x16x1", npz, lambda: dict(np.load(io.BytesIO(npz)))),
    ]:  # fmt: skip
        parsed = parse_dataset(body, limits=LIMITS)
        ours = best(args.repeat, lambda b=body: parse_dataset(b, limits=LIMITS))
        theirs = best(args.repeat, baseline)
        packing = best(args.repeat, lambda p=parsed: pack(p))
        print(f"{name:<28} {len(body):>11,} {ours:>13.2f}s {theirs:>12.2f}s "
              f"{packing:>6.2f}s {len(pack(parsed)):>13,}")  # fmt: skip


if __name__ == "__main__":
    main()
