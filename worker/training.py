"""A training job's life in a pool process: spec from the store, outcome back to it.

A delivery first marks its job running, before anything slow: from then on a
reaper (worker.reaper) covers it, whatever happens to this process. The record
names the worker from what is cheap to know (its device, the CPU's name, the
installed TensorFlow); once the engine is loaded, what only it knows (a GPU's
name) is written too, before training starts. A store that does not answer as
the delivery starts is tried a few more times; then the message goes back to
the queue, unacknowledged, for another delivery: the job is not dropped.

The engine, and TensorFlow with it, is imported here, in the pool process, on
the first job (or by the warm-up thread a fresh pool process starts), never in
the worker's main process that Celery forks from. It stays loaded with its
compiled graphs for every later job of the process.

Every way a job can end is written to the store: succeeded (summary, result,
arrays and the default-size PNGs in one atomic step), cancelled between
epochs, failed with the exception's type and a message for people (no stack
frames or paths: the traceback goes to the log, not to clients), or failed at
the soft time limit. Every write names this delivery (worker.delivery), so a
delivery the job has moved on from changes nothing. A job that loses the store
mid-run (Redis went away) is left running in the record: a reaper re-queues it
once this worker no longer lists it.
"""

from __future__ import annotations

import functools
import gc
import importlib.metadata
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from celery.exceptions import Reject, SoftTimeLimitExceeded

from core.datasets.uploaded import DatasetDeleted, unpack
from core.engine.hardware import cpu_name
from core.experiment.hooks import TrainingCancelled
from core.experiment.jobs import JobStatus, Summary
from core.experiment.result import dumps_result
from core.experiment.spec import DatasetKind, Device, ExperimentSpec
from core.experiment.studies import StudyPlan, StudyRequest, expand_study
from core.experiment.study_presets import study_preset
from core.settings import get_settings
from core.store.errors import StoreError, is_store_unavailable
from core.store.records import JobRecord, WorkerInfo, dumps_compact
from core.store.stores import JobStore
from worker import pool_state
from worker.delivery import JobDelivery
from worker.device import worker_device
from worker.drawing import HELPER, draw_plots
from worker.failures import public_message
from worker.progress import JobProgressHook

if TYPE_CHECKING:
    from core.engine.run import RunOutput

logger = logging.getLogger(__name__)

# A store that does not answer as a delivery starts is tried this many times, this many
# seconds times the try apart, before the message goes back to the queue.
START_ATTEMPTS = 3
START_RETRY_SECONDS = 0.5
# How long the warm-up waits for the drawing helper to load the plotting, at most.
HELPER_START_SECONDS = 20.0


@functools.cache
def job_store() -> JobStore:
    """This process's job store, made on first use (after the fork, in a pool process)."""
    return JobStore.from_settings(get_settings())


def run_training_job(
    job_id: str,
    *,
    hostname: str,
    soft_time_limit: float | None = None,
    default_plots: bool = True,
) -> JobStatus | None:
    """Train job `job_id` and record how it ended; None when it was not to run.

    `soft_time_limit` is the limit Celery enforces on this run (for the message
    when it strikes); the deployment's setting when None. Without
    `default_plots` no PNG is drawn when it ends (a study's children: their
    plots are drawn on first request, and the study draws its own).
    """
    store = job_store()
    delivery = JobDelivery.of_current_task(job_id)
    record = start_job(store, delivery, hostname)
    if record is None:
        return None
    try:
        return _train(store, delivery, record, hostname, default_plots)
    except TrainingCancelled:
        cancelled = store.mark_cancelled(job_id, delivery=delivery.token)
        return JobStatus.CANCELLED if cancelled else None
    except SoftTimeLimitExceeded:
        limit = soft_time_limit or get_settings().job_soft_time_limit
        logger.warning("job %s stopped at the soft time limit (%s s)", job_id, limit)
        message = f"the job ran longer than the time limit of {limit:g} s and was stopped"
        return fail_job(store, delivery, "TimeLimitExceeded", message)
    except Exception as error:
        if is_store_unavailable(error):
            logger.warning(
                "job %s lost the job store (%s); a reaper will re-queue it", job_id, error
            )
            return None
        logger.exception("job %s failed", job_id)
        return fail_job(store, delivery, type(error).__name__, public_message(error))


def fail_job(
    store: JobStore, delivery: JobDelivery, error_type: str, message: str
) -> JobStatus | None:
    """Fail the delivery's job with an error type and a message for people; None when the
    job is no longer this delivery's (it changed nothing)."""
    failed = store.mark_failed(
        delivery.job_id,
        error_type=error_type,
        message=message,
        delivery=delivery.token,
        dispatch=delivery.dispatch,
    )
    return JobStatus.FAILED if failed else None


def start_job(store: JobStore, delivery: JobDelivery, hostname: str) -> JobRecord | None:
    """Mark the delivery's job running, and take its fencing token; None when it is not
    to run (unknown, finished, cancelled, out of deliveries, or of an older dispatch).

    Raises Reject (requeue) when the store does not answer after START_ATTEMPTS tries:
    Celery then puts the message back in the queue instead of acknowledging it.
    """
    job_id = delivery.job_id
    record = _mark_running(store, delivery, hostname)
    if record is None:
        logger.info(
            "job %s not run: unknown, finished, cancelled, out of deliveries or re-queued "
            "since this message (dispatch %s)", job_id, delivery.dispatch,
        )  # fmt: skip
        return None
    delivery.token = record.deliveries
    return record


def _mark_running(store: JobStore, delivery: JobDelivery, hostname: str) -> JobRecord | None:
    attempt = 1
    while True:
        try:
            return store.mark_running(
                delivery.job_id,
                worker=worker_before_engine(hostname),
                max_deliveries=get_settings().max_deliveries,
                dispatch=delivery.dispatch,
                task=delivery.task,
            )
        except StoreError as error:
            if not is_store_unavailable(error):
                raise
            if attempt == START_ATTEMPTS:
                logger.warning(
                    "job %s: the job store did not answer (%s); its message goes back to "
                    "the queue", delivery.job_id, error,
                )  # fmt: skip
                raise Reject(str(error), requeue=True) from error
            time.sleep(START_RETRY_SECONDS * attempt)
            attempt += 1


def worker_before_engine(hostname: str) -> WorkerInfo:
    """This worker as far as it is known without loading the engine: the device it was
    started for, the CPU's name (as the engine names it) and the installed TensorFlow.

    A GPU's name takes the engine; until it is loaded the record says "GPU".
    """
    device = worker_device()
    name = cpu_name() if device is Device.CPU else "GPU"
    return WorkerInfo(hostname, device.value, name, installed_tensorflow())


@functools.cache
def installed_tensorflow() -> str:
    """The installed TensorFlow's version, read from its package metadata (no import)."""
    for distribution in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return ""


def _train(
    store: JobStore,
    delivery: JobDelivery,
    record: JobRecord,
    hostname: str,
    default_plots: bool,
) -> JobStatus | None:
    from core.engine import run as engine  # TensorFlow: only here, in the pool process

    if not name_worker(store, delivery, record, hostname):
        return None
    spec = spec_of(store, record)
    started = time.perf_counter()
    hook = JobProgressHook(store, delivery.job_id, delivery=delivery.token)
    output = engine.run_experiment(spec, hooks=[hook])
    publish_pool_state()
    trained = time.perf_counter()
    result_json = dumps_result(output.result)
    plots = (
        render_default_plots(delivery.job_id, output.result, result_json) if default_plots else {}
    )
    times = (trained - started, time.perf_counter() - trained)
    return store_success(store, delivery, output, result_json, plots, times=times)


def spec_of(store: JobStore, record: JobRecord) -> ExperimentSpec:
    """The job's spec, an uploaded dataset's arrays read from the store and handed over;
    raises DatasetDeleted (the job fails saying so) when that dataset is gone."""
    spec = ExperimentSpec.model_validate(record.spec)
    dataset = spec.dataset
    if dataset.kind is DatasetKind.UPLOADED and dataset.id is not None:
        packed = store.dataset_data(dataset.id)
        if packed is None:
            raise DatasetDeleted(
                f"dataset {dataset.id} ({dataset.uploaded.name}) was deleted before the job ran"
            )
        dataset.provide(*unpack(packed))
    return spec


def name_worker(store: JobStore, delivery: JobDelivery, record: JobRecord, hostname: str) -> bool:
    """Load the engine and write what only it knows of this worker (a GPU's name) into
    the record; False when the job is no longer this delivery's to run."""
    from core.engine import run as engine  # TensorFlow: only here, in the pool process

    assert delivery.token is not None
    prepare_device()
    worker = WorkerInfo.from_device_info(hostname, engine.device_info())
    if worker.to_json_dict() != record.worker and not store.set_worker(
        delivery.job_id, worker=worker, delivery=delivery.token
    ):
        logger.info("job %s: no longer this delivery's to run", delivery.job_id)
        return False
    return True


def store_success(
    store: JobStore,
    delivery: JobDelivery,
    output: RunOutput,
    result_json: str,
    plots: dict[str, bytes],
    *,
    times: tuple[float, float],
) -> JobStatus | None:
    """Store a run that trained to its end: summary, result (as `result_json`), arrays
    and PNGs at once.

    `times`: the seconds it took to train and to draw the PNGs, for the log.
    """
    stored_at = time.perf_counter()
    stored = store.mark_succeeded(
        delivery.job_id,
        summary=Summary.from_result(output.result),
        result_json=result_json,
        plots=plots,
        arrays=output.arrays,
        delivery=delivery.token,
    )
    if not stored:
        # A cancel or delete won the race with the finish, or the job was delivered
        # again meanwhile: the store kept that.
        logger.info("job %s finished training but was no longer running", delivery.job_id)
        return None
    logger.info(
        "job %s succeeded: training %.3f s, %d PNGs %.3f s, storing %.3f s",
        delivery.job_id, times[0], len(plots), times[1], time.perf_counter() - stored_at,
    )  # fmt: skip
    return JobStatus.SUCCEEDED


def render_default_plots(
    job_id: str, result: Mapping[str, Any], result_json: str
) -> dict[str, bytes]:
    """The plots drawn as a job ends, at the default size, so their first fetch is
    instant: the eager ones (the tutorial's two, `PlotKind.eager`), or with
    `Settings.eager_plots == "all"` every plot the result supports. The API draws
    the others on their first request (tens of milliseconds each); drawing all seven
    here took most of a warm job's time. Drawn here and in the drawing helper at once
    (worker.drawing), the helper from `result_json`, the result as stored.

    A plot that fails to draw is left out (and logged) rather than failing the
    job: the numbers stand, and the API can still try to render it on demand.
    """
    from core.plotting.catalog import EXPERIMENT_PLOTS

    every = get_settings().eager_plots == "all"
    names = [
        name for name in EXPERIMENT_PLOTS.available(result) if every or EXPERIMENT_PLOTS[name].eager
    ]
    return draw_plots(EXPERIMENT_PLOTS, names, result, result_json, what=f"job {job_id}")


_device_lock = threading.Lock()
_device_ready = False


def prepare_device() -> None:
    """Once per process, before the first run: GPU memory growth on a gpu worker, and
    the tiered engine (core.engine.graph_cache): a network's jobs train on the plain
    graph until it recurs (`Settings.xla_compile_after`), then XLA compiles in the
    background for its later jobs, when no job waits and where the tier rule says
    XLA pays (an MLP, a SimpleRNN or GRU over 100 time steps or more; never a
    convolutional or LSTM network, on which it ran slower).

    The warm-up thread and a first job may both get here; TensorFlow refuses
    to change a GPU's settings once it is in use, so only one of them acts.
    """
    global _device_ready
    with _device_lock:
        if _device_ready:
            return
        # The run module first, as every other path imports TensorFlow: two threads
        # importing its submodules in different orders deadlock on their module locks.
        import core.engine.run as engine
        from core.engine import graph_cache

        if worker_device() is Device.GPU:
            engine.configure_gpu_memory_growth()
        graph_cache.set_xla_mode("tiered")
        graph_cache.set_compile_after(get_settings().xla_compile_after)
        graph_cache.set_compile_gate(no_job_waiting)
        graph_cache.on_warm_graphs_change(publish_pool_state)
        logger.info("training on %s", engine.device_info())
        _device_ready = True


def no_job_waiting() -> bool:
    """Whether no job waits on this worker's queue: the background compiler's gate
    (core.engine.graph_cache.set_compile_gate). While jobs wait (a study's children, a
    busy service), every core trains them; a compile would only slow them down."""
    queue = get_settings().queue_for(worker_device())
    return not job_store().any_waiting(queue=queue)


def warm_up_study() -> StudyPlan:
    """What a fresh pool process trains before it counts as ready: the `tutorial` study
    (its first child is `{}`'s network), two epochs a run on the plain graph.

    `_trace_and_draw` trains `{}`'s network alone and the study's children as the API
    groups them (side by side, core.experiment.grouping). Their graphs stay in the
    process's cache (core.engine.graph_cache: epochs are not part of a graph's key),
    so the service's default job and the tutorial study start on graphs already
    traced; and the first trace and drawing of a process pay one-off costs
    (TensorFlow's function machinery, Keras' layers, matplotlib's fonts and each
    plot's frame) that would otherwise fall on the first job or study. Plain, not
    auto: a warm-up asks the background compiler for nothing.
    """
    study = study_preset("tutorial").study
    base = study["base"]
    training = {**base["training"], "epochs": 2, "graph": "plain"}
    return expand_study(
        StudyRequest.model_validate({**study, "base": {**base, "training": training}})
    )


def start_warm_up() -> threading.Thread:
    """Load the engine and plotting in the background, train and draw the warm-up runs
    (`warm_up_study`), then tell the main process the pool is ready
    (worker.pool_state): the heartbeat counts the worker as live only then, so the
    first job does not wait on any of it.

    Called from `worker_process_init`, which must return within seconds:
    importing TensorFlow takes longer, so it happens on this thread. A job that
    arrives meanwhile waits on the import lock, as it would on its own import.
    With `Settings.warm_start` off, only the imports happen.
    """
    thread = threading.Thread(target=_warm_up, name="gradwatch-warm-up", daemon=True)
    thread.start()
    return thread


def _warm_up() -> None:
    try:
        if get_settings().drawing_helper:
            HELPER.start()  # it loads the plotting while this process loads TensorFlow
        import core.plotting.catalog  # noqa: F401 - loads matplotlib

        prepare_device()
        if get_settings().warm_start:
            _trace_and_draw()
    except Exception:
        logger.exception("warm-up failed; the first job will load the engine itself")
        return
    # TensorFlow and matplotlib leave some 380,000 objects that live as long as the
    # process: out of the collector's sight, a full collection takes a millisecond, not
    # the 0.2 s (more once graphs are compiled) that would land on whichever job or
    # plot triggers it.
    gc.collect()
    gc.freeze()
    publish_pool_state()


def _trace_and_draw() -> None:
    from core.engine import run as engine
    from core.engine.graph_calls import tracing_all
    from core.experiment.grouping import ensemble_groups
    from core.plotting.study.series import study_series
    from worker.study_finish import draw_default_plots

    started = time.perf_counter()
    plan = warm_up_study()
    children = plan.children
    results: dict[int, Mapping[str, Any]] = {}
    with tracing_all():  # every graph the tutorial's jobs call, built now
        results[0] = engine.run_experiment(children[0]).result  # `{}`'s network, alone
        for group in ensemble_groups(children, max_members=get_settings().ensemble_members):
            specs = [children[index] for index in group]
            if len(group) == 1:
                results[group[0]] = results.get(group[0]) or engine.run_experiment(specs[0]).result
                continue
            outputs = engine.run_ensemble(specs, [[] for _ in specs])
            for index, output in zip(group, outputs, strict=True):
                assert isinstance(output, engine.RunOutput)  # no hook cancels it
                results[index] = output.result
    # Drawn as a job and a study draw them, so that each plot's first drawing in this
    # process and in the drawing helper is behind them (the API draws the others).
    HELPER.ready(timeout=HELPER_START_SECONDS)
    render_default_plots("warm-up", results[0], dumps_result(results[0]))
    configs = [config.to_json_dict() for config in plan.configs]
    ordered = [results[index] for index in range(len(children))]
    series = study_series(configs, plan.seeds, ordered)
    draw_default_plots("warm-up", series, dumps_compact(series))
    logger.info("warm: the tutorial's networks traced and drawn in %.2f s",
                time.perf_counter() - started)  # fmt: skip


def publish_pool_state() -> None:
    """Tell the main process that this pool process is ready, and what it holds compiled."""
    from core.engine import graph_cache

    warm = [(g.signature, g.members, g.xla) for g in graph_cache.warm_graphs()]
    pool_state.publish(pool_state.PoolState(ready=True, warm=warm))
