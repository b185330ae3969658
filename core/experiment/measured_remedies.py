"""What each prescribed fix did on the networks it was measured on: the ranking's evidence.

Read from measured_remedies.json, which `python benchmarks/remedies.py --emit`
writes (it trains the examples with the engine): the tutorial's sigmoid
network (`vanishing`), the same network with relu and N(0, 10) weights
(`exploding`), and with relu and Adam at a learning rate of 0.1
(`dead_units`), each fix over the same seeds as its baseline.
core/experiment/prescriptions.py ranks a fix by the measurement whose verdict
and hidden activation match the run's; the README reports the same numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.experiment.fixes import FixId
from core.experiment.spec import Activation

SOURCE = "benchmarks/remedies.py"


@dataclass(frozen=True, slots=True)
class Measurement:
    """One fix against one verdict on one example network, over `seeds` seeds.

    `had`: seeds whose baseline run had the verdict; `cleared`: of those, the seeds
    whose run with the fix did not. Changes are the fix's final number minus the
    baseline's, seed by seed; ratios are medians over the seeds.
    """

    verdict: str
    activation: Activation
    fix: FixId
    network: str
    seeds: int
    had: int
    cleared: int
    accuracy_change: float | None
    accuracy_change_std: float | None
    ratio_before: float | None
    ratio_after: float | None
    new_verdicts: Mapping[str, int] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "seeds": self.seeds,
            "had": self.had,
            "cleared": self.cleared,
            "accuracy_change": {"mean": self.accuracy_change, "std": self.accuracy_change_std},
            "gradient_ratio": {"before": self.ratio_before, "after": self.ratio_after},
            "new_verdicts": dict(self.new_verdicts),
            "source": SOURCE,
        }


TABLE = Path(__file__).with_name("measured_remedies.json")
_EXAMPLE_FIELDS = ("verdict", "activation", "network", "seeds", "had", "ratio_before")
_FIX_FIELDS = ("fix", "cleared", "accuracy_change", "accuracy_change_std", "ratio_after")


def read_table(text: str) -> tuple[Measurement, ...]:
    """The measurements of a table as `write_table` writes it: one per fix an example tried."""
    return tuple(
        Measurement(
            verdict=example["verdict"],
            activation=Activation(example["activation"]),
            fix=FixId(row["fix"]),
            network=example["network"],
            seeds=example["seeds"],
            had=example["had"],
            cleared=row["cleared"],
            accuracy_change=row["accuracy_change"],
            accuracy_change_std=row["accuracy_change_std"],
            ratio_before=example["ratio_before"],
            ratio_after=row["ratio_after"],
            new_verdicts=row["new_verdicts"],
        )
        for example in json.loads(text)["examples"]
        for row in example["fixes"]
    )


def write_table(measurements: Sequence[Measurement], *, command: str) -> str:
    """The JSON table of `measurements`, an example (a verdict's network) with its fixes
    in the order they were measured; `command` is what measured them."""
    examples: list[dict[str, Any]] = []
    for m in measurements:
        if not examples or examples[-1]["verdict"] != m.verdict:
            examples.append({name: getattr(m, name) for name in _EXAMPLE_FIELDS} | {"fixes": []})
        row = {name: getattr(m, name) for name in _FIX_FIELDS}
        examples[-1]["fixes"].append(row | {"new_verdicts": dict(m.new_verdicts)})
    return json.dumps({"command": command, "examples": examples}, indent=2) + "\n"


MEASURED: tuple[Measurement, ...] = read_table(TABLE.read_text(encoding="utf-8"))
