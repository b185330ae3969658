"""The layout of `result.json` (core.experiment.result) as OpenAPI schemas.

`GET /v1/experiments/{id}/result` serves the stored bytes as they are; these
models only describe them, for /docs and for generated clients. They read every
result version: what version 2 added (layer lists, `through_time`, regression),
what version 3 added (`capture.activations`, `channels`) and what a capture
switch leaves out are optional. A non-finite number is null, so every captured
number is `number | null`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import Reference, VerdictExplanation
from core.experiment.spec import ExperimentSpec

Num = float | None
Series = list[float | None]


class TensorSeries(BaseModel):
    """One weight's statistics, one value per capture point (absent when not captured)."""

    weight_mean: Series | None = None
    weight_std: Series | None = None
    weight_norm: Series | None = None
    weight_max_abs: Series | None = None
    grad_mean: Series | None = None
    grad_std: Series | None = None
    grad_norm: Series | None = None
    grad_max_abs: Series | None = None
    update_ratio: Series | None = Field(
        None, description="|w_after - w_before| / |w_before|; null where |w_before| is zero"
    )


class ActivationSeries(BaseModel):
    """A layer's activations, one value per capture point: on the probe batch at an
    epoch point, on the step's training batch at a step point (`capture.activations`)."""

    mean: Series
    std: Series
    saturated: Series | None = Field(None, description="sigmoid, tanh, softsign; else null")
    dead: Series | None = Field(None, description="relu; else null")
    negative: Series | None = Field(None, description="the rest of the ReLU family; else null")


class LayerSeries(BaseModel):
    """A layer's series: `activation`, and one entry per weight as Keras names it
    (`kernel`, `bias`, `recurrent_kernel`, `gamma`, `beta`)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, TensorSeries] = Field(init=False)

    activation: ActivationSeries | None = None


class TensorStats(BaseModel):
    """One weight's statistics in the untrained network (the gradient of its first step)."""

    weight_mean: Num = None
    weight_std: Num = None
    weight_norm: Num = None
    weight_max_abs: Num = None
    grad_mean: Num = None
    grad_std: Num = None
    grad_norm: Num = None
    grad_max_abs: Num = None


class ActivationStats(BaseModel):
    mean: Num
    std: Num
    saturated: Num = None
    dead: Num = None
    negative: Num = None


class LayerInitial(BaseModel):
    """A layer of the untrained network: `activation`, and one entry per weight."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, TensorStats] = Field(init=False)

    activation: ActivationStats | None = None


class MeanStd(BaseModel):
    mean: Series
    std: Series


class Tutorial(BaseModel):
    """The tutorial's own view: kernels before training and after each epoch, kernel
    gradients at each epoch's first step, the loss per epoch."""

    epochs: list[int]
    weights: dict[str, MeanStd] | None = Field(None, description="layer -> E+1 values")
    gradients: dict[str, MeanStd] | None = Field(None, description="layer -> E values")
    loss: Series


class _PointNorms(BaseModel):
    """Gradient norms at every capture point, the points named beside them."""

    epoch: list[int] = Field(description="1-based epoch of each capture point")
    step: list[int] = Field(description="0-based optimizer step of each capture point")
    initial: Series = Field(description="the untrained network's, at the first step")


class LayerThroughTime(_PointNorms):
    """||dL/dh_t|| of a recurrent layer for t = 1..T, at every capture point."""

    timesteps: list[int]
    gradient_norm: list[Series] = Field(description="one list of T values per capture point")


class LayerChannels(_PointNorms):
    """A convolution's ||dL/dW[..., c]||, its kernel's gradient norm for each output
    channel c, at every capture point; a channel near zero throughout is a dead filter."""

    channels: list[int] = Field(
        description="the output channels 0..C-1, as Keras indexes the kernel's last axis"
    )
    gradient_norm: list[Series] = Field(description="one list of C values per capture point")


class Histogram(BaseModel):
    edges: Series = Field(description="B+1 bin edges")
    counts: list[int] = Field(description="B counts")


class LayerHistograms(BaseModel):
    weights: list[Histogram] | None = Field(None, description="one per snapshot")
    gradients: list[Histogram] | None = Field(None, description="one per snapshot")


class Histograms(BaseModel):
    """Kernel histograms at snapshots; one entry per layer beside `epochs`, `at`, `bins`."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, LayerHistograms] = Field(init=False)

    epochs: list[int] = Field(description="the (1-based) epoch of each snapshot")
    at: list[str] = Field(description="start (before the epoch's first step) or end")
    bins: int


class History(BaseModel):
    epoch: list[int]
    loss: Series
    accuracy: Series = Field(description="null everywhere for a regression")
    val_loss: Series | None = None
    val_accuracy: Series | None = None


class Score(BaseModel):
    loss: Num
    accuracy: Num = Field(None, description="null for a regression")


class Metrics(BaseModel):
    before: Score = Field(description="the untrained network, on the training part")
    after: Score = Field(description="the trained one, in inference mode")
    baseline: Score | None = Field(None, description="a regression's: always the mean target")
    validation_before: Score | None = None
    validation_after: Score | None = None


class Points(BaseModel):
    x: list[list[Num]] = Field(description="at most 2000 points, 2-D (PCA past two features)")
    y: list[Num]
    projection: str = Field(description="raw or pca")


class DatasetInfo(BaseModel):
    kind: str
    name: str | None = Field(
        None, description="an uploaded file's name, else the kind (absent in older results)"
    )
    id: str | None = Field(None, description="an uploaded dataset's id (null: a generated set)")
    task: str | None = Field(None, description="classification or regression (version 2)")
    sample_shape: list[int] | None = None
    n_train: int
    n_validation: int
    n_features: int
    n_classes: int
    standardized: bool
    points: Points


class LayerInfo(BaseModel):
    name: str = Field(examples=["hidden_1", "lstm_1", "residual_4.dense_1", "output"])
    class_name: str | None = Field(None, description="the Keras class (version 2)")
    units: int | None = None
    activation: str | None = None
    parameters: int
    kernel_size: int | None = None
    output_shape: list[int | None] | None = None
    timesteps: int | None = Field(None, description="recurrent layers")


class CaptureActivations(BaseModel):
    """What the capture points' activation statistics were computed on (version 3)."""

    step_source: Literal["training_batch"] = Field(
        description="a step point's: the samples of the batch the step trained on (its real "
        "rows), in that step's own forward pass: the weights before it, in training mode"
    )
    epoch_source: Literal["probe"] = Field(
        description="an epoch point's and `initial`'s: the fixed probe batch, in inference mode"
    )


class Capture(BaseModel):
    every: str = Field(description="epoch or step")
    points: int
    epoch: list[int] = Field(description="1-based epoch of each capture point")
    step: list[int] = Field(description="0-based optimizer step of each capture point")
    activations: CaptureActivations | None = Field(
        None,
        description="absent with activations off, and before version 3, whose step points' "
        "activations were on the probe batch after the step",
    )


class Boundary(BaseModel):
    """P(class 1) for two classes, else the most likely class, on an R x R grid."""

    x: Series
    y: Series
    z: list[Series]
    classes: int


class MeanStdChange(BaseModel):
    mean: Num
    std: Num


class RatioChange(BaseModel):
    before: Num
    after: Num


class MeasuredRemedy(BaseModel):
    """What the fix did on the example network it was measured on, over `seeds` seeds
    (core.experiment.measured_remedies): the ranking's evidence."""

    network: str = Field(description="the example network it was measured on")
    seeds: int
    had: int = Field(description="seeds whose baseline run had the verdict")
    cleared: int = Field(description="of those, seeds whose run with the fix did not")
    accuracy_change: MeanStdChange = Field(
        description="final accuracy with the fix minus the baseline's, seed by seed"
    )
    gradient_ratio: RatioChange = Field(
        description="the first-to-last RMS gradient ratio, median over the seeds"
    )
    new_verdicts: dict[str, int] = Field(description="verdicts the fix brought -> seeds")
    source: str = Field(description="what measured it")


class Prescription(BaseModel):
    """A change to the spec that should clear a verdict (core.experiment.prescriptions)."""

    fix: str
    rank: int
    patch: dict[str, Any] = Field(description="a JSON merge patch of the spec")
    title: str | None = None
    rationale: str | None = None
    expected: str | None = None
    support: str | None = None
    measured: MeasuredRemedy | None = None
    read_more: list[Reference] | None = None


class GradientFlow(BaseModel):
    """Evidence of `vanishing` and `exploding`: how the kernel gradient flows by depth."""

    median_rms_grad: dict[str, Num] = Field(
        description="layer -> its median RMS kernel gradient over the capture points"
    )
    first_layer: str | None = Field(
        None,
        description="the first layer of the depth ratio (not recurrent); null when every "
        "layer before the output is recurrent (version 2)",
    )
    first_to_last_rms_ratio: Num = Field(description="under 0.1 vanishing, over 1000 exploding")
    max_grad_norm: Num = Field(description="the largest kernel gradient norm of the run")


class Divergence(BaseModel):
    """Evidence of `diverged`: where values stopped being finite."""

    first_non_finite_epoch: int | None = Field(description="the first epoch whose loss is not")
    layers_with_non_finite_values: list[str]
    largest_finite_gradient: Num
    gradients_blew_up: bool | None = Field(
        description="some kernel gradient passed the exploding norm first; null when "
        "gradients were not captured"
    )


class ThroughTimeEvidence(BaseModel):
    """Evidence of `vanishing_through_time` and `exploding_through_time`."""

    first_to_last_ratio: dict[str, Num] = Field(
        description="recurrent layer -> median ||dL/dh_1|| / ||dL/dh_T|| over the capture points"
    )


class Evidence(BaseModel):
    """The numbers behind the verdicts, one member per kind of verdict; a member is absent
    when its numbers were not captured or do not apply (`not_judged` says why)."""

    gradient_flow: GradientFlow
    diverged: Divergence | None = Field(None, description="present when the run diverged")
    through_time: ThroughTimeEvidence | None = Field(
        None, description="networks with recurrent layers whose gradients were captured"
    )
    dead_units: dict[str, Num] | None = Field(
        None, description="relu layer -> share of units dead at the end of the run"
    )
    negative_units: dict[str, Num] | None = Field(
        None,
        description="leaky_relu, elu, selu, gelu, swish layer -> share of units below zero "
        "at the end (reported, never a verdict)",
    )
    saturated: dict[str, Num] | None = Field(
        None, description="sigmoid, tanh, softsign layer -> share of saturated activations"
    )
    not_judged: dict[str, str] = Field(
        description="verdict -> why it was not judged, e.g. gradients were not captured"
    )


class Diagnosis(BaseModel):
    verdicts: list[str] = Field(examples=[["vanishing"]])
    evidence: Evidence = Field(description="the numbers behind the verdicts")
    thresholds: dict[str, float]
    prescriptions: dict[str, list[Prescription]] | None = Field(
        None, description="verdict -> fixes, best first"
    )
    explanations: dict[str, VerdictExplanation] | None = None


class DeviceInfo(BaseModel):
    kind: str = Field(description="cpu or gpu")
    name: str
    tensorflow: str


class Timing(BaseModel):
    seconds: float = Field(description="loading the data to the end of training")
    graph: str | None = Field(None, description="plain or xla")
    graph_reused: bool | None = None
    members: int | None = Field(None, description="runs trained side by side")


class ExperimentResult(BaseModel):
    """result.json: every captured series, metrics and the diagnosis of one run."""

    version: int = Field(
        description="3; 2 before a step point's activations came from its training batch "
        "and before per-channel gradient norms, 1 before layer lists"
    )
    spec: ExperimentSpec = Field(description="the spec as run, seed filled in")
    seed: int
    dataset: DatasetInfo
    layers: list[LayerInfo]
    capture: Capture
    series: dict[str, LayerSeries] = Field(description="layer -> its series")
    initial: dict[str, LayerInitial] = Field(description="layer -> the untrained network's")
    tutorial: Tutorial
    through_time: dict[str, LayerThroughTime] | None = Field(
        None, description="recurrent layer -> gradients through time (version 2)"
    )
    channels: dict[str, LayerChannels] | None = Field(
        None,
        description="convolution -> its kernel's gradient norm per output channel (version 3)",
    )
    histograms: Histograms | None
    history: History
    metrics: Metrics
    boundary: Boundary | None
    epochs_run: int
    diverged_at_epoch: int | None
    diagnosis: Diagnosis
    diverged: bool
    device: DeviceInfo
    timing: Timing
