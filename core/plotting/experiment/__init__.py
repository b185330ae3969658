"""The plots of one run, a module per plot idea; each says its `PlotKind` (core.plotting.catalog
lists them). Drawn from the result's numbers alone, never from a model or TensorFlow."""
