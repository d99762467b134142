"""One benchmark strategy, run in a process of its own on the database in ``DATABASE_URL``.

    DATABASE_URL=postgres://postgres@127.0.0.1/scratch \\
        python -m breathecode.feedback.benchmark.strategies command --batch-size 5000

prints one JSON line: the seconds the work took (Python and Django start-up
excluded, the same for every strategy), the rows it filled, this process's
peak resident set size, and, for the command, each chunk's duration as the
command reported it. Each strategy fills both answers and reviews.

A process per run keeps the peak RSS of one strategy from hiding behind
another's, and gives every run a cold connection.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import sys
import time

STRATEGIES = ("loop", "queryset", "raw", "command", "dry-run")

# "  chunk 3/150: ids 10001..15000, 5000 rows in 0.12 s": tolerant of small changes in wording.
CHUNK_LINE = re.compile(r"chunk\b.*?(\d+) rows? in (\d+(?:\.\d+)?) ?s\b")


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


def command(*options: str) -> tuple[int, list[float], int | None]:
    """``backfill_feedback_syllabus`` as a user runs it (verbosity 1, output not a terminal).

    Returns the rows it reports, each chunk's seconds, read from its
    per-chunk progress lines, and the batch size it says it used.
    """
    from django.core.management import call_command

    out = io.StringIO()
    call_command("backfill_feedback_syllabus", *options, stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    chunks = [float(seconds) for _rows, seconds in CHUNK_LINE.findall(text)]
    totals = re.findall(r"(?:updated|Would update) (\d+) records in total", text)
    batch = re.search(r"of up to (\d+) rows", text)
    return (int(totals[-1]) if totals else -1), chunks, int(batch.group(1)) if batch else None


def run(strategy: str, batch_size: int | None) -> dict:
    started_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    chunks: list[float] = []
    batch = None
    options = ["--batch-size", str(batch_size)] if batch_size else []
    started = time.perf_counter()
    if strategy == "loop":
        rows = per_row_loop()
    elif strategy == "queryset":
        rows = queryset_update()
    elif strategy == "raw":
        rows = raw_update()
    elif strategy == "command":
        rows, chunks, batch = command(*options)
    else:
        rows, chunks, batch = command("--dry-run", *options)
    seconds = time.perf_counter() - started
    return {
        "strategy": strategy,
        "seconds": seconds,
        "rows": rows,
        "chunks": chunks,
        "batch_size": batch,
        # Linux reports kilobytes.
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "start_rss_kb": started_rss,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("strategy", choices=STRATEGIES)
    parser.add_argument("--batch-size", type=int)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "breathecode.settings")
    import django
    from django.db import connection

    django.setup()
    connection.ensure_connection()  # connecting is set-up, not work
    print(json.dumps(run(args.strategy, args.batch_size)))


if __name__ == "__main__":
    main(sys.argv[1:])
