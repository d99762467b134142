"""Run a compiled backfill chunk by chunk, each chunk in its own short transaction.

Chunk boundaries follow the eligible rows in ascending id: a chunk ends at the
id of the ``size``-th eligible row after the previous chunk, so no chunk holds
more than ``batch_size`` rows, ``limit`` is exact, and gaps in the ids cost
nothing. A run stops at the highest id present when it started, so it ends even
while rows keep arriving. No state is kept between runs: every UPDATE re-checks
"target IS NULL", so a rerun simply finds what is left.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db import DatabaseError, transaction

from .compiler import Compiler
from .dialects import Failure

# Bounds for --target-chunk-time's adaptive batch size.
MIN_BATCH_SIZE, MAX_BATCH_SIZE = 100, 200_000
REPLICA_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Plan:
    """What a run will do, known before it writes anything."""

    rows: int  # eligible rows it will fill (at most the limit)
    first_id: int | None
    last_id: int | None
    stop: int | None  # highest id present at the start; nothing above it is touched
    chunks: int


@dataclass(frozen=True)
class ChunkDone:
    """A committed chunk ``(lo, hi]`` (or, in a dry run, one that was read)."""

    lo: int
    hi: int
    rows: int
    seconds: float
    records: list[tuple] = field(default_factory=list)  # (id, new value, *shown) when asked for


@dataclass(frozen=True)
class Retrying:
    lo: int
    hi: int
    attempt: int
    delay: float
    message: str


@dataclass(frozen=True)
class Paused:
    """Waiting before the next chunk because a replica replays ``lag`` seconds behind."""

    lag: float


@dataclass(frozen=True)
class RowFailed:
    """A row the database refused to update; every other row of its chunk was committed."""

    pk: int
    message: str


class ChunkError(Exception):
    """The run had to stop (connection lost, permission denied, ...); says where: ``ids 1..10000: ...``."""

    def __init__(self, where: str, error: DatabaseError):
        super().__init__(f"{where}: {first_line(error)}")


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class Runner:
    """Plans and runs one backfill on one connection.

    ``sample`` is how many records (id, new value, shown columns) to collect
    across the run, read in the chunk's own transaction just before its
    UPDATE (``None``: all of them). Records cost one extra SELECT per chunk,
    so only chunks that still owe records run it.
    """

    def __init__(
        self,
        compiler: Compiler,
        connection,
        *,
        batch_size: int | None = None,  # None: the dialect's default
        limit: int | None = None,
        start_id: int = 0,
        dry_run: bool = False,
        sample: int | None = 0,
        retries: int = 5,
        lock_timeout_ms: int = 2000,
        statement_timeout_ms: int = 30000,
        sleep: float = 0.0,
        target_chunk_seconds: float | None = None,
        max_replica_lag: float | None = None,
        should_stop=lambda: False,
    ):
        batch_size = compiler.dialect.default_batch_size if batch_size is None else batch_size
        if batch_size < 1 or (limit is not None and limit < 1) or retries < 0:
            raise ValueError("batch_size and limit must be at least 1, retries at least 0.")
        self.compiler = compiler
        self.dialect = compiler.dialect
        self.connection = connection
        self.batch_size = batch_size
        self.limit = limit
        self.start_id = start_id
        self.dry_run = dry_run
        self.sample = sample
        self.retries = retries
        self.lock_timeout_ms = lock_timeout_ms
        self.statement_timeout_ms = statement_timeout_ms
        self.sleep = sleep
        self.target_chunk_seconds = target_chunk_seconds
        self.max_replica_lag = max_replica_lag
        self.should_stop = should_stop  # checked between chunks: a clean stop never splits one
        # Built once, before the loop.
        self.boundary_sql = compiler.boundary()
        self.update_sql = compiler.update()
        self.preview_sql = compiler.preview(lock=not dry_run)

    # -- planning -----------------------------------------------------------

    def plan(self) -> Plan:
        with self.connection.cursor() as cursor:
            cursor.execute(self.compiler.max_id())
            (stop,) = cursor.fetchone()
            if stop is None:
                return Plan(0, None, None, None, 0)
            cursor.execute(self.compiler.count(), {"lo": self.start_id, "stop": stop})
            rows, first_id, last_id = cursor.fetchone()
        if self.limit is not None and rows > self.limit:
            rows = self.limit
            last_id, _ = self.boundary(self.start_id, stop, self.limit)
        return Plan(rows, first_id, last_id, stop, math.ceil(rows / self.batch_size))

    def report(self) -> dict[str, int]:
        """Every row counted into one of the compiler's categories, plus ``total``."""
        with self.connection.cursor() as cursor:
            cursor.execute(self.compiler.report())
            total, *counts = cursor.fetchone()
        names = [name for name, _ in self.compiler.categories]
        return {"total": total, **{name: int(count or 0) for name, count in zip(names, counts)}}

    def preview(self, plan: Plan, size: int) -> list[tuple]:
        """The first ``size`` records the run would fill."""
        if not plan.rows:
            return []
        with self.connection.cursor() as cursor:
            cursor.execute(self.compiler.preview(), {"lo": self.start_id, "hi": plan.last_id, "size": size})
            return cursor.fetchall()

    def for_part(self, connection, lo: int, hi: int, rows: int, *, sample: int | None) -> tuple[Runner, Plan]:
        """This runner, on ``connection``, for the ``rows`` planned rows in ``(lo, hi]`` only."""
        part = copy.copy(self)
        part.connection, part.start_id, part.limit, part.sample = connection, lo, rows, sample
        return part, Plan(rows, None, hi, hi, math.ceil(rows / self.batch_size))

    # -- running ------------------------------------------------------------

    def run(self, plan: Plan) -> Iterator[ChunkDone | Retrying | RowFailed | Paused]:
        """Fill (or, dry, read) the planned rows chunk by chunk, yielding what happens.

        Stops early, between chunks, once ``should_stop()`` is true.
        """
        if plan.stop is None:
            return
        lo, remaining = self.start_id, self.limit if self.limit is not None else math.inf
        while remaining > 0 and not self.should_stop():
            yield from self._wait_for_replicas()
            if self.should_stop():
                return
            hi, rows = self.boundary(lo, plan.stop, min(self.batch_size, remaining))
            if not rows:
                return
            for event in self._settle(lo, hi, rows):
                # The limit covers the lowest eligible rows tried: a refused row is reported, not replaced.
                if isinstance(event, ChunkDone):
                    remaining -= event.rows
                    self._adapt(event)
                elif isinstance(event, RowFailed):
                    remaining -= 1
                yield event
            lo = hi
            if remaining > 0:
                self._pause(self.sleep)

    def boundary(self, lo: int, stop: int, size: int) -> tuple[int | None, int]:
        """``(id of the size-th eligible row after lo, how many there are)``, not past ``stop``."""
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(self.boundary_sql, {"lo": lo, "stop": stop, "size": size})
                return cursor.fetchone()
        except DatabaseError as error:
            raise ChunkError(f"ids {lo + 1}..{stop}", error) from error

    def _pause(self, seconds: float) -> None:
        """Sleep, in short steps, so that a stop request is not kept waiting."""
        end = time.monotonic() + seconds
        while not self.should_stop() and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    def _adapt(self, chunk: ChunkDone) -> None:
        """Steer the batch size toward ``target_chunk_seconds``, at most doubling or halving at once."""
        if not self.target_chunk_seconds or chunk.rows < self.batch_size // 2:
            return  # a short last chunk says little about the speed
        factor = min(2.0, max(0.5, self.target_chunk_seconds / max(chunk.seconds, 1e-3)))
        # The square root damps the steps, so one slow chunk does not swing the size.
        self.batch_size = min(MAX_BATCH_SIZE, max(MIN_BATCH_SIZE, round(self.batch_size * factor**0.5)))

    def _wait_for_replicas(self) -> Iterator[Paused]:
        if self.max_replica_lag is None or self.dry_run:
            return  # a dry run writes nothing a replica must replay
        while (lag := self._replica_lag()) > self.max_replica_lag and not self.should_stop():
            yield Paused(lag)
            self._pause(REPLICA_POLL_SECONDS)

    def _replica_lag(self) -> float:
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(self.dialect.replica_lag_sql)
                return float(cursor.fetchone()[0] or 0)
        except DatabaseError as error:
            raise ChunkError("reading the replicas' lag", error) from error

    def _settle(self, lo: int, hi: int, rows: int) -> Iterator[ChunkDone | Retrying | RowFailed]:
        """Run chunk ``(lo, hi]``; retry it if transient, narrow it down if a row is refused."""
        for attempt in range(self.retries + 1):
            try:
                yield self._chunk(lo, hi, rows)
                return
            except DatabaseError as error:
                failure = error
                kind = self.dialect.classify(error)
                if kind is Failure.FATAL:
                    raise ChunkError(f"ids {lo + 1}..{hi}", error) from error
                if kind is Failure.ROW or attempt == self.retries:
                    break
                delay = self._backoff(attempt)
                yield Retrying(lo, hi, attempt + 1, delay, first_line(error))
                self._pause(delay)
            if self.should_stop():
                return  # stopped, not failed: a rerun picks these rows up
        if self.should_stop():
            return
        if rows == 1:
            yield RowFailed(hi, first_line(failure))
            return
        # Split in two halves by eligible rows, and settle each on its own.
        mid, first = self.boundary(lo, hi, rows // 2)
        if first:
            yield from self._settle(lo, mid, first)
            hi_rest, rest = self.boundary(mid, hi, rows)
            if rest:
                yield from self._settle(mid, hi_rest, rest)

    def _backoff(self, attempt: int) -> float:
        # Exponential with full jitter, so retrying workers do not march in step.
        return random.uniform(0, min(5.0, 0.05 * 2**attempt))

    def _chunk(self, lo: int, hi: int, rows: int) -> ChunkDone:
        started = time.monotonic()
        wanted = rows if self.dry_run or self.sample is None else min(self.sample, rows)
        with transaction.atomic(using=self.connection.alias), self.connection.cursor() as cursor:
            for statement in self.dialect.chunk_setup(
                lock_timeout_ms=self.lock_timeout_ms, statement_timeout_ms=self.statement_timeout_ms
            ):
                cursor.execute(statement)
            records = []
            if wanted:
                cursor.execute(self.preview_sql, {"lo": lo, "hi": hi, "size": wanted})
                records = cursor.fetchall()
            if self.dry_run:
                updated = len(records)
            else:
                cursor.execute(self.update_sql, {"lo": lo, "hi": hi})
                updated = cursor.rowcount
        if self.sample is not None and not self.dry_run:
            self.sample -= len(records)
        return ChunkDone(lo, hi, updated, time.monotonic() - started, records)
