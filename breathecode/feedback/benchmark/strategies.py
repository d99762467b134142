"""One benchmark strategy, run in a process of its own on the database in ``DATABASE_URL``.

    DATABASE_URL=postgres://postgres@127.0.0.1/scratch \\
        python -m breathecode.feedback.benchmark.strategies command --batch-size 5000 --workers 2

prints one JSON line: the seconds the work took (Python and Django start-up
excluded, the same for every strategy), the rows it filled, this process's
peak resident set size, and, for the command, its longest and median chunk
as its ``--json`` summary reports them. Each strategy fills both answers and reviews.

A process per run keeps the peak RSS of one strategy from hiding behind
another's, and gives every run a cold connection.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import time

STRATEGIES = ("loop", "queryset", "raw", "command", "dry-run")


def per_row_loop() -> int:
    """What upstream breathecode ships: select the rows, then one ``save(update_fields=...)`` each.

    The same queryset (``select_related`` over the whole path, ``count()``
    first, the result set iterated and cached) and the same line per record,
    formatted and written, here to the null device instead of a terminal.
    """
    from breathecode.feedback.models import Answer, Review

    updated = 0
    with open(os.devnull, "w") as sink:
        for model in (Answer, Review):
            records = model.objects.filter(
                cohort__isnull=False,
                syllabus__isnull=True,
                cohort__syllabus_version__isnull=False,
                cohort__syllabus_version__syllabus__isnull=False,
            ).select_related("cohort__syllabus_version__syllabus")
            sink.write(f"Found {records.count()} {model.__name__} records to process\n")
            for record in records:
                syllabus = record.cohort.syllabus_version.syllabus
                record.syllabus = syllabus
                record.save(update_fields=["syllabus"])
                sink.write(f"  ✓ {model.__name__} {record.pk}: cohort={record.cohort.slug} → syllabus={syllabus.slug}\n")
                updated += 1
    return updated


def queryset_update() -> int:
    """Django's one-liner: ``QuerySet.update(syllabus=Subquery(...))``, one statement per model."""
    from django.db.models import OuterRef, Subquery

    from breathecode.admissions.models import Cohort
    from breathecode.feedback.models import Answer, Review

    updated = 0
    for model in (Answer, Review):
        syllabus = Cohort.objects.filter(pk=OuterRef("cohort_id")).values("syllabus_version__syllabus")[:1]
        updated += model.objects.filter(
            syllabus__isnull=True, cohort__syllabus_version__syllabus__isnull=False
        ).update(syllabus=Subquery(syllabus))
    return updated


def raw_update() -> int:
    """One unchunked ``UPDATE ... FROM`` per model, over every id, each in its own transaction.

    The very statement the command runs per chunk, with the id range opened to
    the whole table, so the ratio to it is the cost of chunking alone.
    """
    from django.db import connection

    from breathecode.feedback.backfills import SYLLABUS_BACKFILLS
    from breathecode.utils.backfill import Compiler, dialect_for

    updated = 0
    for backfill in SYLLABUS_BACKFILLS.values():
        compiler = Compiler(backfill, dialect_for(connection))
        with connection.cursor() as cursor:
            cursor.execute(compiler.update(), {"lo": 0, "hi": 2**62})
            updated += cursor.rowcount
    return updated


def command(*options: str) -> dict:
    """``backfill_feedback_syllabus`` as a user runs it, reporting through its ``--json`` summary.

    Returns the rows it updated (or would), its longest and median chunk in
    seconds (over both models), and the batch size it started with.
    """
    from django.core.management import call_command

    out = io.StringIO()
    call_command("backfill_feedback_syllabus", "--json", *options, stdout=out, stderr=io.StringIO())
    summary = json.loads(out.getvalue())
    models = [m for m in summary["models"].values() if m["chunks"]]
    # The larger table's median stands for the run; the longest chunk is the longest anywhere.
    largest = max(models, key=lambda m: m["chunks"], default=None)
    return {
        "rows": summary["total_updated"],
        "longest_chunk": max((m["longest_chunk_seconds"] for m in models), default=None),
        "median_chunk": largest["median_chunk_seconds"] if largest else None,
        "batch_size": max((m["batch_size"] for m in summary["models"].values()), default=None),
    }


def run(strategy: str, options: list[str]) -> dict:
    started_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if strategy == "loop":
        result = {"rows": per_row_loop()}
    elif strategy == "queryset":
        result = {"rows": queryset_update()}
    elif strategy == "raw":
        result = {"rows": raw_update()}
    elif strategy == "command":
        result = command(*options)
    else:
        result = command("--dry-run", *options)
    seconds = time.perf_counter() - started
    return {
        "strategy": strategy,
        "seconds": seconds,
        "longest_chunk": None,
        "median_chunk": None,
        "batch_size": None,
        **result,
        # Linux reports kilobytes.
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "start_rss_kb": started_rss,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("strategy", choices=STRATEGIES)
    parser.add_argument("options", nargs=argparse.REMAINDER, help="Options for the command strategies.")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "breathecode.settings")
    import django
    from django.db import connection

    django.setup()
    connection.ensure_connection()  # connecting is set-up, not work
    print(json.dumps(run(args.strategy, args.options)))


if __name__ == "__main__":
    main(sys.argv[1:])
