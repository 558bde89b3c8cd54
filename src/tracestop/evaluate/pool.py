"""Worker processes for evaluation: the one place that fans work out over processes.

Work is mapped in order; with one worker (or one item) it runs in this process, with the same
initializer, so results never depend on ``workers``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import TypeVar

__all__ = ["map_batches", "pool_map"]

T = TypeVar("T")
R = TypeVar("R")


def pool_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int | None = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[object, ...] = (),
    fork: bool = False,
    chunksize: int = 1,
) -> Iterator[R]:
    """``fn`` over ``items``, in order, in ``workers`` processes (``None``: all cores).

    ``initializer(*initargs)`` runs once per worker (or once here, when run in-process).
    ``fork=True`` starts the workers by fork, so they inherit module state set before the call
    instead of receiving it pickled; where fork is unavailable the work runs in-process.
    """
    n = workers or os.cpu_count() or 1
    parallel = n > 1 and len(items) > 1 and (not fork or "fork" in mp.get_all_start_methods())
    if not parallel:
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, items)
        return
    ctx = mp.get_context("fork") if fork else None
    init = partial(initializer, *initargs) if initializer is not None else None
    with ProcessPoolExecutor(n, mp_context=ctx, initializer=init) as ex:
        yield from ex.map(fn, items, chunksize=chunksize)


def map_batches(
    fn: Callable[[list[T]], list[R]],
    items: Sequence[T],
    *,
    workers: int | None = None,
    batch_size: int = 16,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[object, ...] = (),
    progress: Callable[[int], None] | None = None,
) -> list[R]:
    """``fn`` over ``items`` cut into batches of ``batch_size``, results flattened in order;
    ``progress(n)`` is called with the number of items each finished batch returned."""
    batches = [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
    out: list[R] = []
    for res in pool_map(fn, batches, workers=workers, initializer=initializer, initargs=initargs):
        out.extend(res)
        if progress:
            progress(len(res))
    return out
