"""Upper bounds on every size a client controls, and the error for a spec that breaks one.

`Limits` bounds a spec's sizes field by field and across fields (core/experiment/spec.py,
core/experiment/sizing.py, core/experiment/studies.py); `SpecLimitError` names the field to
blame, so the HTTP layer can point at it.
"""

from __future__ import annotations


class Limits:
    """Upper bounds on every size a client controls.

    They keep one job within a few minutes of CPU and a few hundred MB of
    memory on a small worker; raise them in code, not per request.
    """

    SAMPLES = 20_000
    HIDDEN_LAYERS = 32
    WIDTH = 512
    PARAMETERS = 1_000_000
    EPOCHS = 1_000
    BATCH_SIZE = 4_096
    STEPS = 200_000  # epochs x batches per epoch
    # Sample-passes x parameters (epochs x training samples x parameters), the
    # arithmetic of a run: a dense net costs about 6 float operations per
    # parameter and sample (2 forward, 4 back), so 2e11 is ~1.2e12 operations,
    # a minute or two of a small worker's 2 cores at the 10-20 GFLOP/s small
    # matrix products reach, plus the capture. The tutorial is 100 x 1000 x
    # 141 = 1.4e7; digits through three 512-wide layers for 100 epochs, 1e11.
    WORK = 200_000_000_000
    STEP_CAPTURE_POINTS = 20_000  # capture points when capturing every step
    HISTOGRAM_BINS = 200
    HISTOGRAM_SNAPSHOTS = 20
    PROBE_SIZE = 4_096  # samples in the activation probe, forward-passed at each capture point
    RAW_VALUES = 2_500_000  # float32 values in arrays.npz (10 MB)
    # Numbers in result.json's series and histograms (about 20 bytes each in JSON):
    # capture points x layers x the statistics captured, so a result stays near 10 MB.
    RESULT_VALUES = 500_000
    NAME_LENGTH = 200
    CLASSES = 20
    CENTERS = 20
    SEED = 2**31 - 1
    SEQUENCE_LENGTH = 1_000
    IMAGE_SIZE = 64
    # Layer lists (core/experiment/layers.py) are bounded by their arithmetic,
    # counted per sample by `layer_shapes.infer_shapes` (a training step costs about 3x
    # its forward pass), and recurrent layers by their time steps, which run one
    # after another whatever their size. benchmarks/networks.py measured (on a
    # loaded 2-core machine, so a floor) ~3 GFLOP/s for small convolutions and
    # ~0.3-0.9 ms per time step forward and back for a small LSTM: these keep a
    # job to a few minutes and one step to about half a second.
    FLOPS = 5e11  # a job's float operations: 3 x forward per sample x samples x epochs
    STEP_FLOPS = 1.5e9  # one optimizer step's: 3 x forward per sample x batch
    # Time steps of all recurrent layers in one pass, which run one after another
    # whatever the arithmetic: timed between the engine's calls, an LSTM(16)'s step at
    # batch 1 on this loaded 2-core machine at ~0.45 s for 1,000 and ~0.8 s for 1,500.
    STEP_TIMESTEPS = 1_000
    # A job's time steps, optimizer steps x STEP_TIMESTEPS' count; it also bounds
    # the through-time gradient norms a result keeps (one per step and time step
    # at most).
    RUN_TIMESTEPS = 1_000_000
    DATA_VALUES = 20_000_000  # float32 values in a dataset (80 MB): samples x sample size


class SpecLimitError(ValueError):
    """A spec that breaks a limit spanning several fields.

    Carries the dotted path of the field to blame so the HTTP layer can name it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
