"""The data a run trains on: generated and bundled sets; the only package that loads scikit-learn.

It may import `core.experiment`.
"""
