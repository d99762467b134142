"""Run one backfill's planned rows on several connections at once.

The planned rows are cut into disjoint id ranges holding equal numbers of
eligible rows; each range is run by an ordinary :class:`Runner` on its own
connection (a thread each: the work happens in the database), still in short
per-chunk transactions. Ranges never overlap, so no row is written twice, and
each range's limit is the rows it was planned with, so ``--limit`` stays exact.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connections

from .runner import Plan, Runner


@dataclass(frozen=True)
class Part:
    lo: int
    hi: int
    rows: int


def split(runner: Runner, plan: Plan, workers: int) -> list[Part]:
    """At most ``workers`` ranges ``(lo, hi]`` covering the planned rows, by equal eligible counts."""
    parts, lo, left = [], runner.start_id, plan.rows
    share = math.ceil(plan.rows / workers) if plan.rows else 0
    while left > 0:
        hi, rows = runner.boundary(lo, plan.last_id, min(share, left))
        if not rows:
            break
        parts.append(Part(lo, hi, rows))
        lo, left = hi, left - rows
    return parts


_DONE = object()


def run_parallel(runner: Runner, plan: Plan, workers: int) -> Iterator:
    """The events of every part, as they happen. A part that fails stops only itself; the
    others run to the end, then the first failure is raised."""
    events: queue.Queue = queue.Queue()
    alias = runner.connection.alias

    def work(index: int, part: Part) -> None:
        try:
            # Django gives each thread its own connection; only the first part shows a sample.
            sample = runner.sample if index == 0 or runner.sample is None else 0
            part_runner, part_plan = runner.for_part(connections[alias], part.lo, part.hi, part.rows, sample=sample)
            for event in part_runner.run(part_plan):
                events.put(event)
        except Exception as error:
            events.put(error)
        finally:
            connections[alias].close()
            events.put(_DONE)

    threads = [
        threading.Thread(target=work, args=(index, part), name=f"backfill-worker-{index}", daemon=True)
        for index, part in enumerate(split(runner, plan, workers))
    ]
    for thread in threads:
        thread.start()
    failures, running = [], len(threads)
    try:
        while running:
            event = events.get()
            if event is _DONE:
                running -= 1
            elif isinstance(event, Exception):
                failures.append(event)
            else:
                yield event
    finally:
        # On Ctrl-C the runners see should_stop() and end after their chunk in flight.
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
