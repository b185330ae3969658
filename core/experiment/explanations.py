"""What each verdict means, why it happens and where to read more, for people.

The diagnosis (core/experiment/diagnosis.py) decides; this module explains,
so that a teacher can point students at `GET /v1/verdicts` and a result
carries the explanation of each verdict it got. The text is data: one
`Explanation` per verdict kind, each citing `REFERENCES` by key, and the
prescriptions (core/experiment/prescriptions.py) cite the same papers.

Example:
    >>> explanation("vanishing").read_more[0]
    'glorot2010'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class Reference:
    """A paper to read, with a stable link."""

    key: str
    authors: str
    year: int
    title: str
    venue: str
    url: str

    def to_json_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


REFERENCES: dict[str, Reference] = {
    reference.key: reference
    for reference in (
        Reference(
            "glorot2010",
            "Xavier Glorot, Yoshua Bengio",
            2010,
            "Understanding the difficulty of training deep feedforward neural networks",
            "AISTATS 2010, PMLR 9:249-256",
            "https://proceedings.mlr.press/v9/glorot10a.html",
        ),
        Reference(
            "he2015",
            "Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun",
            2015,
            "Delving Deep into Rectifiers: Surpassing Human-Level Performance on ImageNet "
            "Classification",
            "ICCV 2015",
            "https://arxiv.org/abs/1502.01852",
        ),
        Reference(
            "ioffe2015",
            "Sergey Ioffe, Christian Szegedy",
            2015,
            "Batch Normalization: Accelerating Deep Network Training by Reducing Internal "
            "Covariate Shift",
            "ICML 2015",
            "https://arxiv.org/abs/1502.03167",
        ),
        Reference(
            "pascanu2013",
            "Razvan Pascanu, Tomas Mikolov, Yoshua Bengio",
            2013,
            "On the difficulty of training recurrent neural networks",
            "ICML 2013",
            "https://arxiv.org/abs/1211.5063",
        ),
        Reference(
            "hochreiter1997",
            "Sepp Hochreiter, Jürgen Schmidhuber",
            1997,
            "Long Short-Term Memory",
            "Neural Computation 9(8):1735-1780",
            "https://doi.org/10.1162/neco.1997.9.8.1735",
        ),
        Reference(
            "bengio1994",
            "Yoshua Bengio, Patrice Simard, Paolo Frasconi",
            1994,
            "Learning long-term dependencies with gradient descent is difficult",
            "IEEE Transactions on Neural Networks 5(2):157-166",
            "https://doi.org/10.1109/72.279181",
        ),
        Reference(
            "he2016",
            "Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun",
            2016,
            "Deep Residual Learning for Image Recognition",
            "CVPR 2016",
            "https://arxiv.org/abs/1512.03385",
        ),
        Reference(
            "maas2013",
            "Andrew L. Maas, Awni Y. Hannun, Andrew Y. Ng",
            2013,
            "Rectifier Nonlinearities Improve Neural Network Acoustic Models",
            "ICML 2013 Workshop on Deep Learning for Audio, Speech and Language Processing",
            "https://ai.stanford.edu/~amaas/papers/relu_hybrid_icml2013_final.pdf",
        ),
        Reference(
            "clevert2016",
            "Djork-Arné Clevert, Thomas Unterthiner, Sepp Hochreiter",
            2016,
            "Fast and Accurate Deep Network Learning by Exponential Linear Units (ELUs)",
            "ICLR 2016",
            "https://arxiv.org/abs/1511.07289",
        ),
        Reference(
            "lu2020",
            "Lu Lu, Yeonjong Shin, Yanhui Su, George Em Karniadakis",
            2020,
            "Dying ReLU and Initialization: Theory and Numerical Examples",
            "Communications in Computational Physics 28(5)",
            "https://arxiv.org/abs/1903.06733",
        ),
    )
}


@dataclasses.dataclass(frozen=True, slots=True)
class Explanation:
    """One verdict kind for people: what it means, why it happens, where to read more."""

    verdict: str
    title: str
    meaning: str
    cause: str
    read_more: tuple[str, ...]  # keys of REFERENCES

    def to_json_dict(self) -> dict[str, Any]:
        references = [REFERENCES[key].to_json_dict() for key in self.read_more]
        return {**dataclasses.asdict(self), "read_more": references}


EXPLANATIONS: tuple[Explanation, ...] = (
    Explanation(
        "vanishing",
        "Vanishing gradients",
        "The gradient that reaches the first hidden layer is under a tenth of the output "
        "layer's (per weight, over the run): the layers nearest the input barely change, so "
        "the network learns as if it were shallower, or not at all.",
        "Backpropagation multiplies the gradient by every layer's weights and its "
        "activation's slope on the way back. Sigmoid's slope is at most 1/4 and far less where "
        "a unit saturates, so each sigmoid layer can shrink the gradient fourfold or more; "
        "unless the weights make up for it, the shrinking compounds with depth (and with "
        "time steps in a recurrent network, which is what the LSTM was designed against).",
        ("glorot2010", "he2015", "ioffe2015", "hochreiter1997"),
    ),
    Explanation(
        "exploding",
        "Exploding gradients",
        "Some layer's kernel gradient is huge (a norm over 1000), or the first layer's gradient "
        "is over 1000 times the output layer's: each step throws the weights far, and training "
        "jumps about or blows up.",
        "The same product of weights and slopes as vanishing, with factors above one: weights "
        "drawn too large for their fan-in (relu with N(0, s^2) weights multiplies the signal by "
        "about s * sqrt(fan_in / 2) per layer), or steps so large that they make the weights, "
        "and with them the next gradient, larger still.",
        ("pascanu2013", "glorot2010", "he2015"),
    ),
    Explanation(
        "dead_units",
        "Dead ReLU units",
        "At least half the units of a relu layer output zero for every sample measured at the "
        "end of the run (the probe batch's, or each step's training batch when capturing every "
        "step): they pass no gradient back, so nothing moves them again.",
        "A relu unit whose pre-activation is negative for every input is stuck at zero. One "
        "large step (a learning rate too high) or a badly scaled draw can push a unit's weights "
        "and bias there, and since its gradient is then zero, no later step brings it back.",
        ("he2015", "lu2020", "maas2013", "clevert2016"),
    ),
    Explanation(
        "saturated",
        "Saturated units",
        "Over the last tenth of the run, at least half of a sigmoid, tanh or softsign layer's "
        "activations sit where the slope is under a tenth of its maximum: those units pass "
        "almost no gradient.",
        "Pre-activations far from zero, from weights too large for the fan-in or inputs that "
        "are not centred, push a bounded activation onto its flat tails; its slope there is "
        "nearly zero, which is vanishing gradients unit by unit.",
        ("glorot2010", "ioffe2015"),
    ),
    Explanation(
        "diverged",
        "Diverged",
        "The loss, a weight or a gradient stopped being a finite number (an overflow or a NaN); "
        "the run stopped at the end of that epoch.",
        "Steps that grow without bound: usually exploding gradients under a learning rate too "
        "large for them, sometimes the log of zero once the outputs saturate completely.",
        ("pascanu2013", "glorot2010"),
    ),
    Explanation(
        "healthy",
        "Healthy",
        "None of the other verdicts applied: the first layer's gradient is within a tenth to a "
        "thousand times the output layer's, no relu layer is mostly dead, no bounded layer "
        "mostly saturated, and every number stayed finite.",
        "Healthy gradients say that every layer can learn, not that the network has: read the "
        "loss and the accuracy too (a regression's loss against its baseline).",
        ("glorot2010",),
    ),
    Explanation(
        "vanishing_through_time",
        "Vanishing gradients through time",
        "A recurrent layer's gradient with respect to its first hidden state is under a "
        "hundredth of that with respect to its last (over the run): what the layer saw early "
        "in a sequence barely moves its weights, so it cannot learn to remember it.",
        "Going back one time step multiplies the gradient by the recurrent weights and the "
        "activation's slope (or, in an LSTM or GRU, by how much of the state its gates keep). "
        "Factors under one compound over the steps; gates that start half closed forget as "
        "fast as a plain layer does.",
        ("bengio1994", "hochreiter1997", "pascanu2013"),
    ),
    Explanation(
        "exploding_through_time",
        "Exploding gradients through time",
        "A recurrent layer's gradient with respect to its first hidden state is over a hundred "
        "times that with respect to its last: the earliest steps pull hardest on the weights.",
        "The same product over time steps as vanishing through time, with factors above one: "
        "recurrent weights whose largest singular value is well over one.",
        ("pascanu2013", "bengio1994"),
    ),
)

_BY_VERDICT = {item.verdict: item for item in EXPLANATIONS}


def explanation(verdict: str) -> Explanation:
    """The explanation of `verdict`; raises KeyError for a kind with none."""
    return _BY_VERDICT[verdict]


def explain(verdicts: Iterable[str]) -> dict[str, dict[str, Any]]:
    """verdict -> its explanation as JSON, for the verdicts a run got (unknown kinds left out)."""
    return {v: _BY_VERDICT[v].to_json_dict() for v in verdicts if v in _BY_VERDICT}
