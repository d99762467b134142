"""Fill feedback Answer/Review.syllabus from cohort -> syllabus version -> syllabus, in set-based chunks."""

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from breathecode.feedback.backfills import SYLLABUS_BACKFILLS
from breathecode.utils.backfill import Compiler, Runner, dialect_for
from breathecode.utils.backfill.runner import (
    DEFAULT_BATCH_SIZE,
    ChunkDone,
    ChunkError,
    Retrying,
    RowFailed,
    first_line,
)
from breathecode.utils.backfill.render import format_sql, run_statements
from breathecode.utils.backfill.schema import NotReady, check_schema

SAMPLE_SIZE = 10  # records shown per model at verbosity 1
ERRORS_SHOWN = 5
RULE = "=" * 70


def check_positive(options, *names):
    """Reject counts below 1; call_command passes options without argparse's type checks."""
    for name in names:
        value = options[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise CommandError(f"--{name.replace('_', '-')} must be a whole number of at least 1, not {value!r}.")


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
            "--dry-run",
            action="store_true",
            help="Count and show what would be updated, without writing anything.",
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
            "--model",
            choices=[*SYLLABUS_BACKFILLS, "all"],
            default="all",
            help="Which model to backfill. Default: all.",
        )
        parser.add_argument(
            "--limit",
            type=int,
            help="Update at most this many records per model, lowest ids first.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows per chunk; each chunk is one short transaction. Default: {DEFAULT_BATCH_SIZE}.",
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            choices=tuple(connections),
            help='The database to backfill. Default: "default".',
        )

    def handle(self, *args, **options):
        alias, dry_run = options["database"], options["dry_run"]
        backfills = self._selected(options)
        if options["sql"]:
            return self._print_sql(alias, backfills, options)
        self._check_ready(alias, backfills)
        if dry_run and options["verbosity"] >= 1:
            self.stdout.write(self.style.WARNING("DRY RUN MODE - No changes will be made"))

        total, failed = 0, 0
        for backfill in backfills:
            runner = self._runner(backfill, alias, options)
            updated, failures = self._process(backfill, runner, options)
            total += updated
            failed += len(failures)
        self._summary(total, dry_run, options["verbosity"])
        if failed:
            raise CommandError(f"{failed} records could not be updated; see the errors above.")

    # -- set-up ---------------------------------------------------------------

    def _selected(self, options):
        """The backfills to run, once the options are known to be sound."""
        check_positive(options, "limit", "batch_size")
        model = options["model"]
        if model == "all":
            return list(SYLLABUS_BACKFILLS.values())
        if model not in SYLLABUS_BACKFILLS:
            raise CommandError(f"--model must be one of {', '.join([*SYLLABUS_BACKFILLS, 'all'])}, not {model!r}.")
        return [SYLLABUS_BACKFILLS[model]]

    def _check_ready(self, alias, backfills):
        connection = connections[alias]
        try:
            connection.ensure_connection()
        except DatabaseError as error:
            raise CommandError(f"Cannot connect to database '{alias}': {first_line(error)}") from error
        try:
            dialect_for(connection)
            for backfill in backfills:
                check_schema(backfill, alias)
        except (NotReady, NotImplementedError) as error:
            raise CommandError(str(error)) from error

    def _runner(self, backfill, alias, options):
        connection = connections[alias]
        verbosity = options["verbosity"]
        return Runner(
            Compiler(backfill, dialect_for(connection)),
            connection,
            batch_size=options["batch_size"],
            limit=options["limit"],
            dry_run=options["dry_run"],
            sample=None if verbosity >= 2 else SAMPLE_SIZE if verbosity == 1 else 0,
        )

    def _print_sql(self, alias, backfills, options):
        """Each statement the run would execute, uncoloured under a ``--`` comment, as sqlmigrate does."""
        try:
            runners = [self._runner(backfill, alias, options) for backfill in backfills]
        except NotImplementedError as error:
            raise CommandError(str(error)) from error
        for runner in runners:
            for comment, sql in run_statements(runner):
                self.stdout.write(f"-- {comment}\n{format_sql(sql)};\n\n")

    # -- one model --------------------------------------------------------------

    def _process(self, backfill, runner, options):
        """Plan and run one model's backfill; return (rows updated, failures)."""
        verbosity, dry_run = options["verbosity"], options["dry_run"]
        plan = runner.plan()
        if verbosity >= 1:
            self.stdout.write(f"\n{RULE}")
            self.stdout.write(self.style.MIGRATE_HEADING(f"Processing {backfill.name} model..."))
            self.stdout.write(RULE)
            self.stdout.write(f"Found {plan.rows} {backfill.name} records to process")
            if plan.rows:
                self.stdout.write(
                    f"  {plan.chunks} chunk(s) of up to {runner.batch_size} rows, "
                    f"ids {plan.first_id}..{plan.last_id}"
                )
            else:
                self.stdout.write(self.style.WARNING(f"  No {backfill.plural} need updating"))

        if dry_run and verbosity < 2:
            # A count is exact for a dry run; reading every row is only worth it to print them all.
            if verbosity == 1:
                self._records(backfill, runner.preview(plan, SAMPLE_SIZE), dry_run)
                self._more(plan.rows, SAMPLE_SIZE)
            updated, failures = plan.rows, []
        else:
            updated, failures = self._run(backfill, runner, plan, options)

        if verbosity >= 1:
            self.stdout.write("")
        verb = "Would update" if dry_run else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} {updated} {backfill.name} records"))
        self._errors(backfill, failures)
        return updated, failures

    def _run(self, backfill, runner, plan, options):
        verbosity, dry_run = options["verbosity"], options["dry_run"]
        updated, failures, shown, chunk = 0, [], 0, 0
        try:
            for event in runner.run(plan):
                if isinstance(event, ChunkDone):
                    chunk += 1
                    updated += event.rows
                    self._records(backfill, event.records, dry_run)
                    shown += len(event.records)
                    if verbosity >= 1:
                        self.stdout.write(
                            f"  chunk {chunk}/{plan.chunks}: ids {event.lo + 1}..{event.hi}, "
                            f"{event.rows} rows in {event.seconds:.2f} s"
                        )
                elif isinstance(event, RowFailed):
                    failures.append(event)
                    if verbosity >= 2:
                        self.stdout.write(self.style.ERROR(f"  ✗ {backfill.name} {event.pk}: {event.message}"))
                elif isinstance(event, Retrying) and verbosity >= 1:
                    self.stderr.write(
                        f"  ids {event.lo + 1}..{event.hi}: {event.message}; retry {event.attempt} "
                        f"in {event.delay:.2f} s"
                    )
        except ChunkError as error:
            raise CommandError(
                f"{backfill.name} {error} (committed: {updated} rows up to id {error.lo}; "
                "run the command again to finish)."
            ) from error
        if verbosity == 1:
            self._more(updated, shown)
        return updated, failures

    # -- presentation -----------------------------------------------------------

    def _records(self, backfill, records, dry_run):
        prefix = "[DRY RUN]" if dry_run else "✓"
        names = [path.split("__")[0] for path in backfill.show]
        for pk, _value, *shown in records:
            described = " → ".join(f"{name}={value}" for name, value in zip(names, shown))
            self.stdout.write(f"  {prefix} {backfill.name} {pk}: {described}")

    def _more(self, total, shown):
        if total > shown:
            self.stdout.write(f"  ... and {total - shown} more (use -v 2 to list every record)")

    def _errors(self, backfill, failures):
        if not failures:
            return
        self.stdout.write(self.style.ERROR(f"Errors: {len(failures)}"))
        for failure in failures[:ERRORS_SHOWN]:
            self.stdout.write(self.style.ERROR(f"  - {backfill.name} {failure.pk}: {failure.message}"))
        if len(failures) > ERRORS_SHOWN:
            self.stdout.write(self.style.ERROR(f"  ... and {len(failures) - ERRORS_SHOWN} more"))

    def _summary(self, total, dry_run, verbosity):
        if verbosity >= 1:
            self.stdout.write(f"\n{RULE}")
        if dry_run:
            self.stdout.write(self.style.SUCCESS(f"DRY RUN: Would update {total} records in total"))
        else:
            self.stdout.write(self.style.SUCCESS(f"✓ Successfully updated {total} records in total"))
        if verbosity >= 1:
            self.stdout.write(RULE)
