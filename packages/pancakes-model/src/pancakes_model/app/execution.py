"""Where the inputs are segmented: threads in this process, or a Dask cluster.

Both call :func:`pancakes_model.app.work.run_input` once per input and hand each finished record to
``record`` (which appends it to the partial run's done-log), at most a few inputs ahead of what has
been recorded, so memory is bounded and an interruption keeps everything already written.

Dask: ``address`` is a scheduler (``tcp://host:8786``, ``tls://…``) or ``local:N`` (a
``LocalCluster`` of N single-threaded worker processes). Workers read the inputs and write into
``OUT/.partial`` themselves, so inputs, model file and OUT must be on a file system they all see;
the client validates what arrived and writes ``run.json`` last. Dask ships pickled tasks: connect
only to schedulers you trust.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from pancakes_data.cluster import close_client, dask_client
from pancakes_model.app.work import Job, run_input, run_input_on_worker, summarize_input, summarize_input_on_worker
from pancakes_model.inference.predict import combine_shares
from pancakes_model.network import Pancakes

__all__ = ["close_client", "dask_client", "run_dask", "run_local", "set_context"]


def _drain(pending: deque, record: Callable[[dict], None], limit: int, result) -> None:
    """Record finished inputs (oldest first) until at most ``limit`` are pending; after a failure
    the others are still recorded before the first error is raised."""
    first_error = None
    while len(pending) > limit:
        try:
            record(result(pending.popleft()))
        except BaseException as exc:
            if limit > 0:
                raise
            first_error = first_error or exc
    if first_error is not None:
        raise first_error


def run_local(
    job: Job, model: Pancakes, todo: Sequence[tuple[int, object]], record: Callable[[dict], None], *, parallel: bool,
    task: Callable = run_input,
) -> None:  # fmt: skip
    """Threads: 2D inputs side by side with one torch thread each (measured 1.35× faster on 2 cores
    than one input at a time on two threads: small tensors scale poorly across threads); volumes
    one at a time with every thread on their slices. ``task``: :func:`run_input` or
    :func:`summarize_input`."""
    cores = max(1, torch.get_num_threads())
    workers = cores if parallel and cores > 1 else 1
    before = torch.get_num_threads()
    if workers > 1:
        torch.set_num_threads(1)
    pending: deque = deque()
    try:
        with ThreadPoolExecutor(workers) as pool:
            try:
                for i, ref in todo:
                    pending.append(pool.submit(task, job, model, i, ref))
                    _drain(pending, record, workers, lambda f: f.result())
            finally:
                _drain(pending, record, 0, lambda f: f.result())
    finally:
        torch.set_num_threads(before)


def run_dask(
    job: Job, client, todo: Sequence[tuple[int, object]], record: Callable[[dict], None],
    task: Callable = run_input_on_worker,
) -> None:  # fmt: skip
    """Dask: one task per input, a bounded window of tasks in flight (memory on the client and the
    scheduler does not grow with the collection); records come back in input order."""
    window = max(2, 4 * sum(client.nthreads().values()))
    pending: deque = deque()
    try:
        for i, ref in todo:
            pending.append(client.submit(task, job, i, ref, pure=False))
            _drain(pending, record, window, lambda f: f.result())
    finally:
        _drain(pending, record, 0, lambda f: f.result())


def set_context(
    job: Job, model: Pancakes, refs: Sequence[object], client=None, *, parallel: bool = True
) -> tuple[float, ...]:
    """The summary of the set ``refs`` for a model with a set-context branch: every input's share
    (:func:`summarize_input`, here or on the cluster), added in input order in float64, so a
    resumed or distributed run gets the same summary — and so the same files — as one local run."""
    shares: dict[int, dict] = {}

    def record(row: dict) -> None:
        shares[row["index"]] = row

    todo = list(enumerate(refs))
    if client is not None:
        run_dask(job, client, todo, record, task=summarize_input_on_worker)
    else:
        run_local(job, model, todo, record, parallel=parallel, task=summarize_input)
    summary = combine_shares((shares[i]["sum"], shares[i]["count"]) for i in range(len(refs)))
    return tuple(float(v) for v in summary)
