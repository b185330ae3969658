"""The Redis job and study store: the only package of `core` that talks to Redis.

It may import `core.experiment`, `core.access`, `core.queue.tasks` and `core.settings`.

    stores.py       JobStore, StudyStore and their asyncio twins: every operation
    jobs.py         operations: a job's life, its results and events
    admission.py    operations: an owner's limits
    workers.py      operations: heartbeats, lost workers and their jobs
    dispatch.py     operations: the dispatcher, which hands each queue's jobs to workers
    outbox.py       operations: claims whose message is not yet confirmed sent
    metrics.py      operations: the counts /metrics shows
    studies.py      operations: a study beside its children
    datasets.py     operations: an owner's uploaded datasets
    plans.py        an operation as data: one round trip and how to read its reply
    events.py, plots.py, pages.py   the event streams, cached PNGs, listing pages
    records.py      the job and study records, parsed and as clients see them
    keys.py         every key name
    scripts/        every Lua script, with one prelude
    connections.py, multiplex.py, errors.py   the connections, their timeouts, their errors
"""
