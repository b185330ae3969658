"""What the machine is, read without TensorFlow: the CPU's name.

The worker names itself in a job's record before the engine (and TensorFlow)
has loaded, and the engine names the device in a run's result; both use this.
"""

from __future__ import annotations

import itertools
from pathlib import Path


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """`CPU (<model name>)` where /proc/cpuinfo names the model, else `CPU`.

    `platform.processor()` is the machine type ("x86_64") on most Linux hosts,
    and many ARM kernels list no model name at all.
    """
    try:
        with cpuinfo.open(encoding="utf-8", errors="replace") as lines:
            for line in itertools.islice(lines, 64):  # the first processor's block
                key, _, value = line.partition(":")
                model = " ".join(value.split())
                if key.strip() == "model name" and model:
                    return f"CPU ({model})"
    except OSError:
        pass
    return "CPU"
