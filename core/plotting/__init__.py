"""Plots drawn from stored numbers: the only package that loads matplotlib.

`catalog` lists every plot as one record (`kinds.PlotKind`); `experiment/` draws a
run's plots from its result and `study/` a study's from its series, a module per
idea, in one look (`style`) on a text-caching canvas (`canvas`) in fixed margins
(`layout`); `sources` says which files make a render's ETag. It may import
`core.experiment`.
"""
