"""The queue between the API and the workers: Celery's configuration and what a message says.

`tasks` (the task names, their kwargs, the dispatch header) imports nothing
heavy, so the store can name a job's task; `app` is the only module of `core`
that imports Celery.
"""
