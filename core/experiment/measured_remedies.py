"""What each prescribed fix did on the networks it was measured on: the ranking's evidence.

Written from `python benchmarks/remedies.py --emit` (which trains the
examples with the engine and prints this table): the tutorial's sigmoid
network (`vanishing`), the same network with relu and N(0, 10) weights
(`exploding`), and with relu and Adam at a learning rate of 0.1
(`dead_units`), each fix over the same seeds as its baseline.
core/experiment/prescriptions.py ranks a fix by the measurement whose verdict
and hidden activation match the run's; the README reports the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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


# One fix's row of an example: fix, seeds cleared, accuracy change (mean, S.D.), ratio after,
# verdicts it brought (seeds with each).
Row = tuple[FixId, int, float | None, float | None, float | None, dict[str, int]]


def example(
    verdict: str,
    activation: Activation,
    network: str,
    *,
    seeds: int,
    had: int,
    ratio_before: float | None,
    rows: tuple[Row, ...],
) -> tuple[Measurement, ...]:
    """The measurements of one example network: one per fix tried on it."""
    return tuple(
        Measurement(
            verdict,
            activation,
            fix,
            network,
            seeds,
            had,
            cleared,
            change,
            std,
            ratio_before,
            after,
            new,
        )
        for fix, cleared, change, std, after, new in rows
    )


# python benchmarks/remedies.py --seeds 5 --emit: `{}` is 2-5-5-5-5-1; seeds 1 to 5, 100 epochs.
MEASURED: tuple[Measurement, ...] = (
    *example(
        "vanishing",
        Activation.SIGMOID,
        "the tutorial's network: sigmoid, N(0, 1), RMSprop",
        seeds=5,
        had=5,
        ratio_before=0.0191,
        rows=(
            (FixId.TANH, 5, 0.322, 0.0628, 12.5, {}),
            (FixId.BATCH_NORM, 5, 0.318, 0.0624, 7.76, {}),
            (FixId.RELU, 5, 0.319, 0.0642, 11.3, {"dead_units": 2}),
            (FixId.RESIDUAL, 1, 0.119, 0.113, 0.0877, {"saturated": 1}),
            (FixId.GLOROT_INIT, 0, -0.176, 0.0487, 0.00163, {}),
        ),
    ),
    *example(
        "exploding",
        Activation.RELU,
        "the tutorial's network with relu and N(0, 10) weights",
        seeds=5,
        had=4,
        ratio_before=5.83,
        rows=(
            (FixId.HE_INIT, 4, 0.476, 0.0234, 6.36, {}),
            (FixId.LOWER_LEARNING_RATE, 0, -0.0238, 0.0179, 3.1, {}),
            (FixId.CLIP_GRADIENTS, 0, 0.0066, 0.0128, 13.3, {}),
        ),
    ),
    *example(
        "dead_units",
        Activation.RELU,
        "the tutorial's network with relu, Adam at a learning rate of 0.1",
        seeds=5,
        had=5,
        ratio_before=0.772,
        rows=(
            (FixId.LEAKY_RELU, 5, 0.187, 0.291, 2.09, {}),
            (FixId.ELU, 5, 0.21, 0.255, 1.25, {}),
            (FixId.LOWER_LEARNING_RATE, 5, 0.219, 0.256, 7.14, {}),
            (FixId.HE_INIT, 0, 0.213, 0.255, 2.36, {}),
        ),
    ),
)
