"""The Redis job and study store: the only package of `core` that talks to Redis.

It may import `core.experiment`, `core.access` and `core.settings`.
"""
