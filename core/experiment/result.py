"""The result of one run: the JSON every plot and client reads.

Layout of `result.json` (all numbers plain floats; a non-finite number is `null`;
E is the number of epochs run, `epochs_run`):

    {
      "version": 3,                        # 2, 1: older layouts (see "Versions")
      "spec": {...},                       # the spec as run, seed filled in
      "seed": 1234,
      "dataset": {"kind": "circles", "task": "classification" | "regression",
                  "name": "circles",       # an uploaded dataset's file name, else the kind
                  "id": null,              # an uploaded dataset's id
                  "sample_shape": [2],     # [8, 8, 1] for digits given to a layer list
                  "n_train": 1000, "n_validation": 0,
                  "n_features": 2, "n_classes": 2,
                  "standardized": false,   # features scaled by the training part's mean/S.D.
                  "points": {"x": [[x0, x1], ...], "y": [0, 1, ...],   # <= 2000 of them
                             "projection": "raw" | "pca"}},
      "layers": [{"name": "hidden_1", "class_name": "Dense", "units": 5,
                  "activation": "sigmoid", "parameters": 15, "kernel_size": 10,
                  "output_shape": [5]}, ..., {"name": "output", ...}],  # see "Layers"
      "capture": {"every": "epoch" | "step", "points": P,
                  "epoch": [...P], "step": [...P],    # 1-based epoch, 0-based step
                  "activations": {"step_source": "training_batch",
                                  "epoch_source": "probe"} | absent},  # with activations
      "series": {                          # per layer, P values per list
        "hidden_1": {
          "kernel": {"weight_mean": [...], "weight_std": [...], "weight_norm": [...],
                     "weight_max_abs": [...], "grad_mean": [...], "grad_std": [...],
                     "grad_norm": [...], "grad_max_abs": [...], "update_ratio": [...]},
          "bias": {... same keys ...},
          "activation": {"mean": [...], "std": [...],
                         "saturated": [...] | null, "dead": [...] | null,
                         "negative": [...] | null}   # see "Activation fractions"
        }, ...                             # "output" has no "activation"
      },
      "initial": {"hidden_1": {"kernel": {"weight_mean": w, "weight_std": w,
                                          "weight_norm": w, "weight_max_abs": w,
                                          "grad_mean": g, "grad_std": g,  # first step's
                                          "grad_norm": g, "grad_max_abs": g},
                               "bias": {...},
                               "activation": {"mean": m, ...}}, ...},  # untrained net
      "tutorial": {"epochs": [0..E],
                   "weights": {"hidden_1": {"mean": [E+1], "std": [E+1]}, ...},
                   "gradients": {"hidden_1": {"mean": [E], "std": [E]}, ...},
                   "loss": [E]},
      "through_time": {"lstm_1": {"timesteps": [1..T], "epoch": [...P], "step": [...P],
                                  "gradient_norm": [[T] x P], "initial": [T]}, ...}
                      | null,              # recurrent layers only; see "Through time"
      "channels": {"conv2d_1": {"channels": [0..C-1], "epoch": [...P], "step": [...P],
                                "gradient_norm": [[C] x P], "initial": [C]}, ...}
                  | null,                  # convolutions only; see "Channels"
      "histograms": {"epochs": [...S], "at": ["start", ..., "end"], "bins": B,
                     "hidden_1": {"weights": [{"edges": [B+1], "counts": [B]}, ...S],
                                  "gradients": [...S]}, ...} | null,  # see "Snapshots"
      "history": {"epoch": [1..E], "loss": [...], "accuracy": [...],
                  "val_loss": [...] | absent, "val_accuracy": [...] | absent},
      "metrics": {"before": {"loss": l, "accuracy": a}, "after": {...},
                  "baseline": {"loss": b} | absent,   # regression: see "Regression"
                  "validation_before": ... | absent, "validation_after": ... | absent},
      "boundary": {"x": [R], "y": [R], "z": [[R] x R], "classes": C} | null,
      "epochs_run": E,                     # under training.epochs when it diverged
      "diverged_at_epoch": k | null,       # the epoch whose loss stopped being finite
      "diagnosis": {"verdicts": ["vanishing", ...],
                    "evidence": {..., "not_judged": {"vanishing": "why", ...}},
                    "thresholds": {...},      # see core/experiment/diagnosis.py
                    "prescriptions": {"vanishing": [{"fix": "tanh", "rank": 1,
                                      "patch": {...}, "rationale": "...", ...}, ...]},
                    "explanations": {"vanishing": {"title": ..., "meaning": ...}}},
                                           # see core/experiment/prescriptions.py
      "diverged": false,
      "device": {"kind": "cpu" | "gpu",
                 "name": "CPU (<model name>)" | "CPU" | "<the GPU's name>",
                 "tensorflow": "2.21.0"},
      "timing": {"seconds": s,             # loading the data to the end of training
                 "graph": "plain" | "xla", # the kind of graph that trained it (spec.training.graph)
                 "graph_reused": bool,     # its compiled graphs came from this process's cache
                 "members": n}             # runs trained side by side in it (core.engine.ensemble)
    }

What a capture point holds (`series`, `capture`):
- `every == "epoch"`: one point per epoch, at its last step: the weights
  after that step; the gradient statistics averaged over the epoch's steps
  (`grad_max_abs`: the largest finite one); the update ratio averaged over
  the steps where it is defined; activations on the probe after the step.
- `every == "step"`: one point per optimizer step: the weights before the
  step and its gradient, its update ratio, and the activations of the
  step's own forward pass: on the samples of its training batch (a short
  last batch's real ones alone), with the weights before the step, in
  training mode (batch normalization on the batch's moments, dropout as
  drawn), as the step's loss and gradient are. `capture.activations` says
  so: `step_source` "training_batch", `epoch_source` "probe" (absent with
  activations off; version 2 results' step points were on the probe after
  the step, see "Versions").
The update ratio |w_after - w_before| / |w_before| is null where |w_before|
is zero (biases before their first step).

`tutorial` is the tutorial's own view: kernel weights before training and
after each epoch, kernel gradients at each epoch's first step, the loss per
epoch (its steps' losses averaged by batch size). `metrics.before` is the untrained network
on the training part; `after`, the trained one, in inference mode.
`boundary.z` holds P(class 1) for two classes, else the most likely class,
on an R x R grid over the (2-D) data.

Snapshots (`histograms`; kernels only, over a range symmetric about zero out
to the largest finite |value|): snapshot i was taken in epoch `epochs[i]` (1-based):
- `at[i] == "start"`: the weights before that epoch's first optimizer step
  (after `epochs[i] - 1` epochs; epoch 1's are the untrained network) and the
  gradient of that first step. These are epoch 1 and then evenly spaced
  epochs, `capture.histogram_snapshots - 1` of them (fewer in a short run).
- `at[i] == "end"`, always the last snapshot: the weights after the last step
  of the last epoch run (the trained network, or where a diverged run stopped)
  and the gradient of that last step.
A diverged run has the start snapshots it reached and its end.

Capture switches (`spec.capture`): what a switch turns off is absent, not null,
wherever it would be; training is the same, so every other number is too.
- `weights` off: the `weight_*` statistics and `update_ratio` (|w_after -
  w_before| / |w_before|, made of weights alone) leave `series`, the kernel
  and bias leave `initial`, and `tutorial.weights`, every histogram's
  `weights` and the raw `*/weights` arrays are absent.
- `gradients` off: the `grad_*` statistics leave `series`; `tutorial.gradients`,
  every histogram's `gradients` and the raw `*/gradients` arrays are absent.
  The diagnosis gives neither `vanishing` nor `exploding` and lists them under
  `evidence.not_judged`; `evidence.gradient_flow` holds nulls.
- `activations` off: no layer has `activation` in `series` or `initial` (the
  probe batch is never forward-passed); `dead_units` and `saturated` are not
  judged.
- With weights and gradients both off, `series` layers and `initial` layers
  are empty objects and `histograms` is null.
A plot drawn from absent numbers is unavailable (core/plotting/catalog.py says which).

Layers (`layers`, `series`): an MLP's are `hidden_1` ... `hidden_n` and
`output`. A layer list's are named by class and position in the list (after a
leading InputLayer), as Keras names them: `conv2d_1`, `max_pooling2d_2`,
`lstm_3`, a residual block's members `residual_4.dense_1`, and `output`.
`layers` lists every one of them, with its `output_shape`, `parameters` and
`kernel_size` (the weights of its kernel, the input kernel of a recurrent
layer; null without one; `timesteps` for recurrent layers). `series` has the
layers with weights, each with one entry per weight as Keras names it
(`kernel` and `bias`; `kernel`, `recurrent_kernel` and `bias` for SimpleRNN,
LSTM and GRU, the gates side by side in Keras' order; `gamma` and `beta` for
batch and layer normalization), and every layer whose activations are probed
(those with an activation other than linear, and recurrent layers, whose
state is judged by its mean and S.D. alone for LSTM and GRU) has `activation`;
a convolution's units are its channels, over every position.

Through time (`through_time`, recurrent layers only, with gradients
captured): ||dL/dh_t||, the norm over the batch and the units of the loss's
gradient with respect to the layer's hidden state at step t (for t = 1..T
its input's steps), taken in the training step's own backward pass. At step
points, the step's; at epoch points, the mean over the epoch's steps, as the
other gradient statistics; `initial` is the untrained network's, at the first
step.

Channels (`channels`, Conv1D and Conv2D layers only, residual blocks' members
included, with gradients captured): for each output channel c of the layer's
kernel (shape (k..., in, C): `kernel[..., c]`, numbered from 0 as Keras indexes
it), the L2 norm of the loss's gradient with respect to that channel's weights,
taken from the training step's own gradient (the channels' norms make up the
kernel's `grad_norm`). At step points, the step's; at epoch points, the mean
over the epoch's steps, as the other gradient statistics; `initial` is the
untrained network's, at the first step. A channel whose norm stays at or near
zero is a dead filter: no gradient reaches its weights, so it never learns.

Regression (`dataset.task == "regression"`, the `adding` set): the output is
linear and the loss mean squared error; `accuracy` is null everywhere, and
`metrics.baseline.loss` is the mean squared error of always predicting the
training targets' mean, what a network that learned nothing scores.

Versions: version 3 took a step point's activations from its training
batch. Version 2 (before that) has no `capture.activations`, and its step
points' activations are on the probe batch after each step; it reads as
version 3 does otherwise (tests/core/fixtures keeps real ones). Version 1
(results written before layer lists) has no `through_time`, no
`dataset.task` or `sample_shape`, no `metrics.baseline`, and its `layers`
entries only `name`, `units`, `activation` and `parameters`: read it as an
MLP's classification result (every reader here does, and tests/core/fixtures
keeps real ones to prove it). Version 3 also added `channels`: versions 2 and
1 have none, read as a result whose per-channel norms were not captured.

Activation fractions, over the samples a point saw: the probe batch at an
epoch point and in `initial`, the step's training batch at a step point
(`capture.activations`); each is null where it does not apply:
- `saturated` (sigmoid, tanh, softsign): unit-sample pairs where the slope is
  under a tenth of the activation's steepest.
- `dead` (relu): units at or below zero on every one of those samples; they
  pass no signal and no gradient, so they never recover. At a step point
  that is every sample of one batch (32 by default), a weaker test than the
  probe's (256 by default): a unit can be silent on a batch and not dead.
- `negative` (leaky_relu, elu, selu, gelu, swish): the same fraction for the
  rest of the ReLU family, whose units still pass a reduced gradient below zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import orjson

RESULT_VERSION = 3

# What a capture point's activation statistics are computed on (`capture.activations`).
ACTIVATION_SOURCES = {"step_source": "training_batch", "epoch_source": "probe"}

# The statistics captured per variable and step, in the order the engine computes them
# (the columns of a step's statistics) and the result names them.
TENSOR_STATS = (
    "weight_mean",
    "weight_std",
    "weight_norm",
    "weight_max_abs",
    "grad_mean",
    "grad_std",
    "grad_norm",
    "grad_max_abs",
    "update_ratio",
)


def finite_or_none(value: float) -> float | None:
    """A float for JSON, or None where it is NaN or infinite."""
    value = float(value)
    return value if math.isfinite(value) else None


def finite_list(values: Iterable[float] | np.ndarray) -> list[float | None]:
    """A list of floats for JSON with every non-finite entry as None."""
    array = np.asarray(values, dtype=np.float64)
    out: list[float | None] = array.tolist()
    if not np.isfinite(array).all():
        for index in np.flatnonzero(~np.isfinite(array.ravel())):
            out[int(index)] = None
    return out


def _plain(value: Any) -> Any:
    """A NumPy value as the JSON type it stands for (orjson's `default`)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps_result(result: Mapping[str, Any]) -> str:
    """Strict JSON (no NaN or Infinity tokens: orjson writes them as null) for a result.

    NumPy values are written as the Python numbers they hold (a float32's exact
    value, not its shortest repr); keys that are not strings as strings, as the
    standard library's json does. The tutorial's result takes 1 ms, not the 34 ms
    of walking it in Python first.
    """
    return orjson.dumps(dict(result), default=_plain, option=orjson.OPT_NON_STR_KEYS).decode()
