"""Fill feedback Answer/Review.syllabus from cohort -> syllabus version -> syllabus, in set-based chunks."""

import json
import math
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from tqdm import tqdm

from breathecode.feedback.backfills import SYLLABUS_BACKFILLS
from breathecode.utils.backfill import Compiler, Runner, dialect_for
from breathecode.utils.backfill.dialects import PostgreSQLDialect, SQLiteDialect
from breathecode.utils.backfill.parallel import run_parallel
from breathecode.utils.backfill.render import format_sql, run_statements
from breathecode.utils.backfill.runner import (
    ChunkDone,
    ChunkError,
    Paused,
    Retrying,
    RowFailed,
    first_line,
)
from breathecode.utils.backfill.schema import NotReady, check_schema

SAMPLE_SIZE = 10  # records shown per model at verbosity 1
ERRORS_SHOWN = 5
ERRORS_KEPT = 1000  # refused rows remembered per model (for --json); the rest are only counted
PROGRESS_EVERY = 5.0  # seconds between plain progress lines at verbosity 1
RULE = "=" * 70
# Options that only shape a run; --check refuses them rather than ignore them.
RUN_OPTIONS = (
    "limit", "batch_size", "workers", "start_id", "sleep", "target_chunk_time",
    "max_replica_lag", "lock_timeout", "statement_timeout", "retries",
)


BIGINT = 2**63 - 1  # ids and counts are bound as 64-bit integers
MAX_MS = 2**31 - 1  # PostgreSQL's largest time-out, in milliseconds
DAY = 86_400.0


def check_number(options, name, *, low, high, whole=True):
    """Reject a value outside [low, high], here rather than halfway through a run.

    call_command passes options without argparse's type checks, so types are checked too.
    """
    value = options[name]
    if value is None:
        return
    kind = "a whole number" if whole else "a number"
    is_number = not isinstance(value, bool) and isinstance(value, int if whole else (int, float))
    if not is_number or not math.isfinite(value) or value < low:
        raise CommandError(f"--{name.replace('_', '-')} must be {kind} of at least {low}, not {value!r}.")
    if value > high:
        raise CommandError(f"--{name.replace('_', '-')} must be {kind} of at most {high}, not {value!r}.")


@dataclass
class Outcome:
    """What happened to one model, for the summary and --json."""

    found: int = 0
    batch_size: int = 0  # at the start (--target-chunk-time changes it)
    updated: int = 0
    chunks: int = 0
    seconds: float = 0.0
    last_id: int | None = None  # the highest id of the last committed chunk
    failures: list[RowFailed] = field(default_factory=list)  # the first ERRORS_KEPT
    failed: int = 0
    chunk_seconds: list[float] = field(default_factory=list)

    def add(self, chunk: ChunkDone, *, seconds: float) -> None:
        """Count a committed chunk; ``seconds`` since the run started."""
        self.chunks += 1
        self.chunk_seconds.append(chunk.seconds)
        self.updated += chunk.rows
        self.last_id = max(self.last_id or 0, chunk.hi)
        self.seconds = seconds

    def fail(self, failure: RowFailed) -> None:
        self.failed += 1
        if len(self.failures) < ERRORS_KEPT:
            self.failures.append(failure)

    def as_json(self):
        return {
            "found": self.found,
            "updated": self.updated,
            "failed": self.failed,
            "failed_ids": [f.pk for f in self.failures],
            "chunks": self.chunks,
            "batch_size": self.batch_size,
            "seconds": round(self.seconds, 3),
            "last_id": self.last_id,
            "longest_chunk_seconds": round(max(self.chunk_seconds, default=0), 3),
            "median_chunk_seconds": round(statistics.median(self.chunk_seconds), 3) if self.chunk_seconds else 0,
        }


class StopSignals:
    """First SIGINT/SIGTERM: finish the chunk in flight, then stop. Second: abort it at once."""

    NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        # Signal handlers can only be set from the main thread (call_command may run elsewhere).
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.NAMES}
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt  # rolls back the chunk in flight
        self.received = signum

    @property
    def name(self):
        return self.NAMES.get(self.received, "SIGINT")

    @property
    def returncode(self):
        return 128 + (self.received or signal.SIGINT)


class Command(BaseCommand):
    help = (
        "Set syllabus on feedback answers and reviews that have none, from their cohort's "
        "syllabus version, with one UPDATE per chunk of ids. Rows that already have a "
        "syllabus are never changed."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # A bad option gets one line ("...: error: argument --limit: ..."), not the long usage.
        parser.print_usage = lambda file=None: None
        return parser

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Count and show what would be updated, without writing anything."
        )
        parser.add_argument(
            "--sql",
            action="store_true",
            help=(
                "Print the SQL statements this run would execute on the database's backend, "
                "then stop; nothing is read or written."
            ),
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help=(
                "Write nothing; report per model the rows still to fill, those that can never be "
                "filled, and those already set. Exit status 1 while rows remain to fill."
            ),
        )
        parser.add_argument(
            "--json", action="store_true", help="Print one JSON summary on stdout and nothing else there."
        )
        parser.add_argument(
            "--model", choices=[*SYLLABUS_BACKFILLS, "all"], default="all", help="Which model to backfill. Default: all."
        )
        parser.add_argument(
            "--limit", type=int, help="Update at most this many records per model, lowest ids first."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            help=(
                "Rows per chunk; each chunk is one short transaction. Default: "
                f"{PostgreSQLDialect.default_batch_size} on PostgreSQL, {SQLiteDialect.default_batch_size} on "
                "SQLite (about 0.1-0.2 s a chunk)."
            ),
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help=(
                "PostgreSQL: split the rows into this many disjoint id ranges, each run on its own "
                "connection at once, still one short transaction per chunk. Default: 1."
            ),
        )
        parser.add_argument(
            "--start-id", type=int, default=0, help="Only consider ids above this one (to resume). Default: 0."
        )
        parser.add_argument(
            "--sleep", type=float, default=0.0, help="Seconds to pause between chunks. Default: 0."
        )
        parser.add_argument(
            "--target-chunk-time",
            type=int,
            metavar="MS",
            help="Grow or shrink the batch size toward chunks of this many milliseconds.",
        )
        parser.add_argument(
            "--max-replica-lag",
            type=float,
            metavar="SECONDS",
            help="PostgreSQL: pause while any standby replays further behind than this.",
        )
        parser.add_argument(
            "--lock-timeout",
            type=int,
            default=2000,
            metavar="MS",
            help="How long a chunk waits for a row lock (SQLite: the busy timeout). Default: 2000.",
        )
        parser.add_argument(
            "--statement-timeout",
            type=int,
            default=30000,
            metavar="MS",
            help="PostgreSQL: the longest a chunk statement may run. Default: 30000.",
        )
        parser.add_argument(
            "--retries",
            type=int,
            default=5,
            help="Retries of a chunk that hit a lock or time-out, before it is split. Default: 5.",
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            choices=tuple(connections),
            help='The database to backfill. Default: "default".',
        )

    def handle(self, *args, **options):
        self.options = options
        self.verbosity = -1 if options["json"] else options["verbosity"]
        backfills = self._selected(options)
        alias = options["database"]
        if options["sql"]:
            return self._print_sql(alias, backfills, options)
        self._check_ready(alias, backfills, options)
        if options["check"]:
            return self._check(alias, backfills)

        self._say(self.style.WARNING("DRY RUN MODE - No changes will be made"), when=options["dry_run"])
        outcomes = {}
        with StopSignals() as stop:
            try:
                for backfill in backfills:
                    if stop.received is None:
                        # Stored before it runs, so a second signal mid-chunk still reports what was committed.
                        outcomes[backfill.name] = Outcome()
                        self._process(backfill, self._runner(backfill, alias, stop), outcomes[backfill.name])
            except KeyboardInterrupt:
                stop.received = stop.received or signal.SIGINT
            except CommandError:
                self._json(outcomes, "error")
                raise
        self._finish(outcomes, stop)

    # -- set-up ---------------------------------------------------------------

    def _selected(self, options):
        """The backfills to run, once the options are known to be sound."""
        for name in ("limit", "batch_size"):
            check_number(options, name, low=1, high=BIGINT)
        check_number(options, "start_id", low=0, high=BIGINT)
        check_number(options, "workers", low=1, high=64)
        check_number(options, "retries", low=0, high=100)
        for name in ("target_chunk_time", "lock_timeout", "statement_timeout"):
            check_number(options, name, low=1, high=MAX_MS)
        for name in ("sleep", "max_replica_lag"):
            check_number(options, name, low=0, high=DAY, whole=False)
        if options["sql"] and (options["check"] or options["json"]):
            raise CommandError("--sql prints the statements and nothing else; run --check or --json separately.")
        if options["check"] and options["dry_run"]:
            raise CommandError("--check already writes nothing; leave out --dry-run.")
        if options["check"] and (tuned := self._run_options_given(options)):
            raise CommandError(f"--check counts every row and runs no chunks; leave out --{tuned[0].replace('_', '-')}.")
        if options["start_id"] and options["model"] not in SYLLABUS_BACKFILLS:
            raise CommandError(
                "--start-id is an id of one table; name it with --model (e.g. --model answer --start-id 14000)."
            )
        model = options["model"]
        if model == "all":
            return list(SYLLABUS_BACKFILLS.values())
        if model not in SYLLABUS_BACKFILLS:
            raise CommandError(f"--model must be one of {', '.join([*SYLLABUS_BACKFILLS, 'all'])}, not {model!r}.")
        return [SYLLABUS_BACKFILLS[model]]

    def _run_options_given(self, options):
        """The options that shape a run (chunks, pacing, time-outs) set to something else than their default."""
        defaults = vars(self.create_parser("manage.py", "backfill_feedback_syllabus").parse_args([]))
        return [name for name in RUN_OPTIONS if options[name] != defaults[name]]

    def _check_ready(self, alias, backfills, options):
        connection = connections[alias]
        try:
            connection.ensure_connection()
        except (DatabaseError, ImproperlyConfigured) as error:  # unreachable, or its driver is missing
            raise CommandError(f"Cannot connect to database '{alias}': {first_line(error)}") from error
        try:
            dialect = dialect_for(connection)
            for backfill in backfills:
                check_schema(backfill, alias)
            if options["max_replica_lag"] is not None:
                self._check_replicas_visible(alias, connection, dialect)
            read_only = not (options["dry_run"] or options["check"]) and self._read_only(connection, dialect)
        except (NotReady, NotImplementedError) as error:
            raise CommandError(str(error)) from error
        except DatabaseError as error:
            raise CommandError(f"Database '{alias}': {first_line(error)}") from error
        if options["workers"] > 1 and not dialect.supports_parallel_writers:
            raise CommandError(
                f"--workers needs a database that takes several writers at once; {connection.vendor} "
                "runs one writer at a time, so extra workers would only wait. Leave --workers out."
            )
        if read_only:
            raise CommandError(
                f"Database '{alias}' is read-only (a standby, or a read-only transaction default); "
                "run against the primary, or use --dry-run or --check here."
            )

    def _check_replicas_visible(self, alias, connection, dialect):
        if dialect.hidden_replicas_sql is None:
            raise CommandError(f"--max-replica-lag needs PostgreSQL; database '{alias}' is {connection.vendor}.")
        with connection.cursor() as cursor:
            cursor.execute(dialect.hidden_replicas_sql)
            if cursor.fetchone()[0]:
                raise CommandError(
                    f"--max-replica-lag: this role cannot see the replicas' lag in pg_stat_replication on "
                    f"database '{alias}'; GRANT pg_monitor (or pg_read_all_stats) to it, or drop the option."
                )

    def _read_only(self, connection, dialect):
        with connection.cursor() as cursor:
            cursor.execute(dialect.read_only_sql)
            return bool(cursor.fetchone()[0])

    def _runner(self, backfill, alias, stop=None):
        connection, options = connections[alias], self.options
        target = options["target_chunk_time"]
        return Runner(
            Compiler(backfill, dialect_for(connection)),
            connection,
            batch_size=options["batch_size"],
            limit=options["limit"],
            start_id=options["start_id"],
            dry_run=options["dry_run"],
            sample=None if self.verbosity >= 2 else SAMPLE_SIZE if self.verbosity == 1 else 0,
            retries=options["retries"],
            lock_timeout_ms=options["lock_timeout"],
            statement_timeout_ms=options["statement_timeout"],
            sleep=options["sleep"],
            target_chunk_seconds=target / 1000 if target else None,
            max_replica_lag=options["max_replica_lag"],
            should_stop=(lambda: stop.received is not None) if stop else (lambda: False),
        )

    def _print_sql(self, alias, backfills, options):
        """Each statement the run would execute, uncoloured under a ``--`` comment, as sqlmigrate does."""
        self.options, self.verbosity = options, options["verbosity"]
        try:
            runners = [self._runner(backfill, alias) for backfill in backfills]
        except NotImplementedError as error:
            raise CommandError(str(error)) from error
        for runner in runners:
            for comment, sql in run_statements(runner):
                self.stdout.write(f"-- {comment}\n{format_sql(sql)};\n\n")

    # -- verification ---------------------------------------------------------

    def _check(self, alias, backfills):
        reports = {}
        for backfill in backfills:
            try:
                reports[backfill.name] = self._runner(backfill, alias).report()
            except DatabaseError as error:
                raise CommandError(f"{backfill.name}: {first_line(error)}") from error
        if self.options["json"]:
            self.stdout.write(json.dumps(reports, indent=2))
        for name, report in reports.items():
            self._say(self.style.MIGRATE_HEADING(f"{name}: {report['total']} rows"), when=True, level=0)
            for category, count in report.items():
                if category != "total":
                    self._say(f"  {category:<40} {count:>12}", when=True, level=0)
        remaining = sum(report["to fill"] for report in reports.values())
        if remaining:
            raise CommandError(f"{remaining} records still need the backfill.", returncode=1)

    # -- one model --------------------------------------------------------------

    def _process(self, backfill, runner, outcome):
        """Plan and run one model's backfill, keeping ``outcome`` up to date as chunks commit."""
        try:
            plan = runner.plan()
            sample = runner.preview(plan, SAMPLE_SIZE) if self.options["dry_run"] and self.verbosity == 1 else []
        except DatabaseError as error:
            raise CommandError(f"{backfill.name}: {first_line(error)}") from error
        outcome.found, outcome.batch_size = plan.rows, runner.batch_size
        self._say(f"\n{RULE}\n{self.style.MIGRATE_HEADING(f'Processing {backfill.name} model...')}\n{RULE}")
        self._say(f"Found {plan.rows} {backfill.name} records to process")
        self._say(
            f"  {plan.chunks} chunk(s) of up to {runner.batch_size} rows, ids {plan.first_id}..{plan.last_id}",
            when=plan.rows,
        )
        self._say(self.style.WARNING(f"  No {backfill.plural} need updating"), when=not plan.rows)

        if self.options["dry_run"] and self.verbosity < 2:
            # A count is exact for a dry run; reading every row is only worth it to print them all.
            if self.verbosity == 1:
                self._records(backfill, sample)
                self._more(plan.rows, len(sample))
            outcome.updated = plan.rows
        else:
            self._run(backfill, runner, plan, outcome)

        self._say("")
        verb = "Would update" if self.options["dry_run"] else "Updated"
        self._say(self.style.SUCCESS(f"{verb} {outcome.updated} {backfill.name} records"), level=0)
        self._errors(backfill, outcome)

    def _run(self, backfill, runner, plan, outcome):
        """Run the chunks, keeping ``outcome`` current and showing progress."""
        started, shown, last_line, last_chunk = time.monotonic(), 0, time.monotonic(), None
        bar = self._bar(backfill, plan)
        workers = self.options["workers"]
        try:
            for event in run_parallel(runner, plan, workers) if workers > 1 else runner.run(plan):
                if isinstance(event, ChunkDone):
                    outcome.add(event, seconds=time.monotonic() - started)
                    last_chunk, shown = event, shown + len(event.records)
                    self._records(backfill, event.records, bar)
                    if bar:
                        bar.update(event.rows)
                    elif self.verbosity >= 2 or (self.verbosity == 1 and time.monotonic() - last_line >= PROGRESS_EVERY):
                        self._progress(event, outcome, plan)
                        last_line = time.monotonic()
                elif isinstance(event, RowFailed):
                    outcome.fail(event)
                    self._say(self.style.ERROR(f"  ✗ {backfill.name} {event.pk}: {event.message}"), level=2)
                elif isinstance(event, Retrying):
                    self._note(f"  ids {event.lo + 1}..{event.hi}: {event.message}; retry {event.attempt} in {event.delay:.2f} s")
                elif isinstance(event, Paused):
                    self._note(f"  paused: a replica replays {event.lag:.1f} s behind (limit {runner.max_replica_lag} s)")
        except ChunkError as error:
            upto = f", up to id {outcome.last_id}" if outcome.last_id and self._in_id_order else ""
            raise CommandError(
                f"{backfill.name} {error} (committed: {outcome.updated} rows{upto}; run the command again to finish)."
            ) from error
        finally:
            if bar:
                bar.close()
        if self.verbosity == 1 and not bar and last_chunk:
            self._progress(last_chunk, outcome, plan)
        if self.verbosity == 1:
            self._more(outcome.updated, shown)

    @property
    def _in_id_order(self):
        """Whether committed chunks form one prefix of the ids (not so with parallel workers)."""
        return self.options["workers"] == 1

    # -- presentation -----------------------------------------------------------

    def _say(self, text, *, when=True, level=1):
        """Write to stdout when ``when`` holds and the verbosity reaches ``level`` (never with --json)."""
        if when and self.verbosity >= level:
            self.stdout.write(text)

    def _note(self, text):
        """A diagnostic: stderr, at verbosity 1 and up (with --json too)."""
        if self.options["verbosity"] >= 1:
            self.stderr.write(text)

    def _bar(self, backfill, plan):
        """A progress bar with rate and ETA, when a person watches a terminal."""
        if self.verbosity >= 1 and self.stdout.isatty() and plan.rows:
            return tqdm(total=plan.rows, desc=backfill.name, unit="rows", unit_scale=True, file=sys.stderr)
        return None

    def _progress(self, event, outcome, plan):
        rate = outcome.updated / outcome.seconds if outcome.seconds else 0
        self._say(
            f"  chunk {outcome.chunks}/{plan.chunks}: ids {event.lo + 1}..{event.hi}, {event.rows} rows in "
            f"{event.seconds:.2f} s ({outcome.updated}/{plan.rows} rows, {rate:,.0f} rows/s)"
        )

    def _records(self, backfill, records, bar=None):
        prefix = "[DRY RUN]" if self.options["dry_run"] else "✓"
        names = [path.split("__")[0] for path in backfill.show]
        for pk, _value, *shown in records:
            described = " → ".join(f"{name}={value}" for name, value in zip(names, shown))
            if bar:
                bar.clear()
            self._say(f"  {prefix} {backfill.name} {pk}: {described}")

    def _more(self, total, shown):
        self._say(f"  ... and {total - shown} more (use -v 2 to list every record)", when=total > shown)

    def _errors(self, backfill, outcome):
        if not outcome.failed:
            return
        self._say(self.style.ERROR(f"Errors: {outcome.failed}"), level=0)
        for failure in outcome.failures[:ERRORS_SHOWN]:
            self._say(self.style.ERROR(f"  - {backfill.name} {failure.pk}: {failure.message}"), level=0)
        self._say(
            self.style.ERROR(f"  ... and {outcome.failed - ERRORS_SHOWN} more"),
            when=outcome.failed > ERRORS_SHOWN,
            level=0,
        )

    def _finish(self, outcomes, stop):
        """Totals, then the exit status: 0 done, 1 rows failed, 128 + signal when stopped."""
        total = sum(o.updated for o in outcomes.values())
        failed = sum(o.failed for o in outcomes.values())
        self._say(f"\n{RULE}")
        if self.options["dry_run"]:
            self._say(self.style.SUCCESS(f"DRY RUN: Would update {total} records in total"), level=0)
        elif stop.received:
            self._say(self.style.WARNING(f"Stopped by {stop.name}: updated {total} records in total"), level=0)
        elif failed:
            self._say(self.style.ERROR(f"✗ Updated {total} records in total; {failed} could not be updated"), level=0)
        else:
            self._say(self.style.SUCCESS(f"✓ Successfully updated {total} records in total"), level=0)
        self._say(RULE)
        reason = "interrupted" if stop.received else "rows failed" if failed else "completed"
        self._json(outcomes, reason)
        if stop.received:
            where = ", ".join(
                f"{name} up to id {o.last_id}" if self._in_id_order else f"{o.updated} {name} records"
                for name, o in outcomes.items()
                if o.last_id
            )
            raise CommandError(
                f"Stopped by {stop.name}; committed {where or 'nothing'}. Run the command again to finish.",
                returncode=stop.returncode,
            )
        if failed:
            raise CommandError(f"{failed} records could not be updated; see the errors above.")

    def _json(self, outcomes, reason):
        if self.options["json"]:
            summary = {
                "models": {name: o.as_json() for name, o in outcomes.items()},
                "total_updated": sum(o.updated for o in outcomes.values()),
                "total_failed": sum(o.failed for o in outcomes.values()),
                "dry_run": self.options["dry_run"],
                "exit_reason": reason,
            }
            self.stdout.write(json.dumps(summary, indent=2))
