"""Task runners for the shard map: threads on one machine, or a Dask cluster through prefect-dask.

Only paths and small reference dicts travel between the flow and its tasks, so a task runs the same
on a thread or on a Dask worker on another host, as long as every worker sees the same input,
cache and output folders (one shared file system).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner


def _resolve_polars_numpy() -> None:
    """polars imports numpy through a lazy proxy whose first use is not thread-safe: a task thread that
    touches it while another is resolving it gets "TypeError: 'module' object does not support item
    assignment" (seen once in a flow run here). Resolving it once, here, before any task thread starts,
    takes the race away."""
    try:
        from polars._dependencies import numpy as proxy

        _ = proxy.ndarray
    except Exception:  # noqa: BLE001 - a polars without the proxy has nothing to resolve
        pass


_resolve_polars_numpy()


def task_runner(workers: int | None = None, dask_address: str | None = None, threads: int | None = None) -> Any:
    """The runner for ``curate``: an existing Dask scheduler (``tcp://host:8786``), a local Dask
    cluster of ``workers`` processes, or (neither given) a thread pool of ``threads`` workers."""
    if dask_address and workers:
        raise ValueError("give either a Dask scheduler address or a number of local workers, not both")
    if not (dask_address or workers):
        return ThreadPoolTaskRunner(max_workers=threads or max(2, os.cpu_count() or 2))
    # Quiet the scheduler's per-task INFO lines, and keep Dask's spill files out of the working folder.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    os.environ.setdefault("DASK_TEMPORARY_DIRECTORY", os.path.join(tempfile.gettempdir(), "refinery-dask"))
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": workers,
            # One thread per worker process: stages are CPU-bound Python/Arrow work, so processes, not
            # threads, give the parallelism, and one shard at a time bounds a worker's memory.
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
    )
