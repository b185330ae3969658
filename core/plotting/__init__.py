"""Plots drawn from stored numbers: the only package that loads matplotlib.

It may import `core.experiment`.
"""
