"""sql/backfill.sql and sql/preview.sql, run with psql, agree with the management command.

Data in every category is made with the project's migrations and factories on
the test PostgreSQL; each script runs on a copy (CREATE DATABASE ... TEMPLATE)
while the command runs on the original, and the two end states are compared.
"""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections

from .factories import answers, make_world, reviews
from .psqlrun import preview_plan, psql, rows, scratch_database

TABLES = ("feedback_answer", "feedback_review")
MODELS = {"feedback_answer": "Answer", "feedback_review": "Review"}

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


@pytest.fixture
def original(pg_alias):
    """The test database, committed, with rows in every category; yields its name.

    Ids have gaps. Answers to fill: 1 4 5 10 11 20 21 30 (5 and 30 get the
    syllabus whose slug is NULL); never: 2 (no cohort), 3 15 (cohort without
    version); kept: 7 (set to another syllabus), 8 (already the cohort's).
    Reviews to fill: 2 3 9 12 13; never: 1 6; kept: 4 5.
    """
    db = make_world(pg_alias)
    fs, ds, legacy, bare = db.fs, db.ds, db.nameless_cohort, db.bare
    answers(
        db,
        {
            1: (fs, None), 2: (None, None), 3: (bare, None), 4: (ds, None), 5: (legacy, None),
            7: (fs, db.data_science), 8: (fs, db.full_stack), 10: (ds, None), 11: (fs, None),
            15: (bare, None), 20: (ds, None), 21: (fs, None), 30: (legacy, None),
        },
    )
    reviews(
        db,
        {
            1: (None, None), 2: (fs, None), 3: (ds, None), 4: (ds, db.full_stack), 5: (fs, db.full_stack),
            6: (bare, None), 9: (legacy, None), 12: (fs, None), 13: (ds, None),
        },
    )
    yield connections[pg_alias].settings_dict["NAME"]


def copy_of(original):
    """A scratch copy of the test database; Django's session closes first (a template may have none)."""
    connections["postgres"].close()
    return scratch_database(template=original)


def command(*args):
    out = StringIO()
    call_command("backfill_feedback_syllabus", *args, database="postgres", no_color=True, stdout=out)
    return out.getvalue()


def pairs(dbname):
    return {table: rows(dbname, table, "id, syllabus_id") for table in TABLES}


def everything_but_syllabus(dbname):
    return {table: rows(dbname, f"{table} AS t", "to_jsonb(t) - 'syllabus_id'") for table in TABLES}


def filled(before, after):
    return {table: [pk for (pk, old), (_, new) in zip(before[table], after[table]) if old != new] for table in TABLES}


def test_backfill_script_ends_like_the_command(original):
    with copy_of(original) as copy:
        before, untouched = pairs(copy), everything_but_syllabus(copy)
        run = psql(copy, "backfill.sql", batch_size=2)
        command("--batch-size", "2")

        assert pairs(copy) == pairs(original)
        assert filled(before, pairs(copy)) == {
            "feedback_answer": [1, 4, 5, 10, 11, 20, 21, 30],
            "feedback_review": [2, 3, 9, 12, 13],
        }
        assert everything_but_syllabus(copy) == untouched  # updated_at included
        assert "Answer chunk 4: ids 21..30, 2 rows in" in run.stderr
        assert "Updated 8 Answer records in 4 chunk(s)" in run.stderr
        assert "Updated 5 Review records in 3 chunk(s)" in run.stderr


def test_second_run_changes_nothing(original):
    with copy_of(original) as copy:
        psql(copy, "backfill.sql")
        done, untouched = pairs(copy), everything_but_syllabus(copy)
        again = psql(copy, "backfill.sql")
        assert pairs(copy) == done
        assert everything_but_syllabus(copy) == untouched
        assert "Updated 0 Answer records in 0 chunk(s)" in again.stderr
        assert "Updated 0 Review records in 0 chunk(s)" in again.stderr


def test_limit_fills_exactly_that_many_per_model_lowest_ids_first(original):
    with copy_of(original) as copy:
        before = pairs(copy)
        psql(copy, "backfill.sql", limit=3, batch_size=2)
        assert filled(before, pairs(copy)) == {"feedback_answer": [1, 4, 5], "feedback_review": [2, 3, 9]}
        command("--limit", "3", "--batch-size", "2")
        assert pairs(copy) == pairs(original)


def test_model_selects_one_table(original):
    with copy_of(original) as copy:
        before = pairs(copy)
        psql(copy, "backfill.sql", model="review")
        assert filled(before, pairs(copy))["feedback_answer"] == []
        assert filled(before, pairs(copy))["feedback_review"] == [2, 3, 9, 12, 13]


@pytest.mark.parametrize("options", [{}, {"batch_size": 2}, {"batch_size": 3, "limit": 4}, {"limit": 100}])
def test_preview_counts_equal_the_dry_run(original, options):
    args = [f"--{name.replace('_', '-')}={value}" for name, value in options.items()]
    dry_run = command("--dry-run", *args)
    expected = {}
    for model in MODELS.values():
        section = dry_run.split(f"Processing {model} model")[1]
        found = int(re.search(rf"Found (\d+) {model} records", section)[1])
        chunks = re.search(r"(\d+) chunk\(s\) of up to \d+ rows, ids (\d+)\.\.(\d+)", section)
        expected[model] = (found, *map(int, chunks.groups())) if chunks else (0, 0, None, None)

    before = everything_but_syllabus(original), pairs(original)
    preview = psql(original, "preview.sql", **options)
    assert (everything_but_syllabus(original), pairs(original)) == before
    assert preview_plan(preview.stdout, MODELS.values()) == expected


def test_preview_shows_the_first_rows_with_their_slugs(original):
    output = psql(original, "preview.sql", sample=3, model="answer").stdout
    lines = [line for line in output.splitlines() if line.count("|") == 3]
    assert [line.split("|")[0] for line in lines] == ["1", "4", "5"]
    assert lines[0].endswith("|miami-web-dev-pt-1|full-stack")
    assert lines[2].endswith("|santiago-legacy-1|")  # the syllabus whose slug is NULL
