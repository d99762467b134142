"""The command end to end, on SQLite and PostgreSQL, with expected values worked out by hand."""

from io import StringIO

import pytest
from django.core.management import call_command

from breathecode.feedback.models import Answer, Review

from .factories import answers, reviews, syllabus_ids

pytestmark = pytest.mark.django_db(databases="__all__")


def backfill(alias, *args, **options):
    out = StringIO()
    call_command(
        "backfill_feedback_syllabus", *args, database=alias, stdout=out, stderr=StringIO(), no_color=True, **options
    )
    return out.getvalue()


@pytest.fixture
def every_case(world):
    """One row per case; the comment says what the backfill must leave."""
    w = world
    answers(
        w,
        {
            1: (w.fs, None),  # filled: full-stack
            2: (None, None),  # no cohort: stays NULL
            3: (w.bare, None),  # cohort without syllabus version: stays NULL
            4: (w.ds, w.data_science),  # already the cohort's: unchanged
            5: (w.ds, w.full_stack),  # already another syllabus: kept
            6: (w.nameless_cohort, None),  # filled: the syllabus without slug
            7: (w.ds, None),  # filled: data-science
        },
    )
    reviews(
        w,
        {
            1: (w.ds, None),  # filled: data-science
            2: (w.bare, None),  # stays NULL
            3: (None, None),  # stays NULL
            4: (w.fs, w.data_science),  # kept
        },
    )
    return w


def test_fills_exactly_the_rows_whose_cohort_has_a_syllabus(every_case, alias):
    w = every_case
    out = backfill(alias)

    assert syllabus_ids(Answer, alias) == {
        1: w.full_stack.pk,
        2: None,
        3: None,
        4: w.data_science.pk,
        5: w.full_stack.pk,
        6: w.nameless.pk,
        7: w.data_science.pk,
    }
    assert syllabus_ids(Review, alias) == {1: w.data_science.pk, 2: None, 3: None, 4: w.data_science.pk}
    assert "Found 3 Answer records to process" in out
    assert "✓ Answer 1: cohort=miami-web-dev-pt-1 → syllabus=full-stack" in out
    assert "✓ Answer 6: cohort=santiago-legacy-1 → syllabus=None" in out
    assert "Updated 3 Answer records" in out
    assert "✓ Review 1: cohort=madrid-data-science-ft-2 → syllabus=data-science" in out
    assert "Updated 1 Review records" in out
    assert "✓ Successfully updated 4 records in total" in out


def test_dry_run_writes_nothing_and_counts_what_the_run_then_updates(every_case, alias):
    before = syllabus_ids(Answer, alias), syllabus_ids(Review, alias)

    dry = backfill(alias, dry_run=True, verbosity=2, batch_size=2)

    assert (syllabus_ids(Answer, alias), syllabus_ids(Review, alias)) == before
    assert "DRY RUN MODE - No changes will be made" in dry
    assert [line.split(":")[0].strip() for line in dry.splitlines() if "[DRY RUN] " in line] == [
        "[DRY RUN] Answer 1",
        "[DRY RUN] Answer 6",
        "[DRY RUN] Answer 7",
        "[DRY RUN] Review 1",
    ]
    assert "Would update 3 Answer records" in dry
    assert "DRY RUN: Would update 4 records in total" in dry
    # The counting dry run (verbosity 1) says the same.
    assert "DRY RUN: Would update 4 records in total" in backfill(alias, dry_run=True)
    assert "✓ Successfully updated 4 records in total" in backfill(alias)


def test_second_run_finds_nothing(every_case, alias):
    backfill(alias)
    out = backfill(alias)

    assert "Found 0 Answer records to process" in out
    assert "No answers need updating" in out
    assert "Found 0 Review records to process" in out
    assert "No reviews need updating" in out
    assert "✓ Successfully updated 0 records in total" in out


def test_model_option_touches_one_model_only(every_case, alias):
    out = backfill(alias, model="review")

    assert "Answer" not in out
    assert syllabus_ids(Answer, alias)[1] is None
    assert syllabus_ids(Review, alias)[1] == every_case.data_science.pk


def test_limit_is_exact_per_model_lowest_ids_first_and_reruns_finish(world, alias):
    w = world
    # Fillable answers at 2, 4, 6, ..., 20; an unfillable one (no cohort) between each.
    answers(w, {pk: ((w.fs if pk % 2 == 0 else None), None) for pk in range(1, 21)})
    reviews(w, {pk: (w.ds, None) for pk in range(1, 8)})

    out = backfill(alias, limit=4, batch_size=3)

    assert [pk for pk, s in syllabus_ids(Answer, alias).items() if s] == [2, 4, 6, 8]
    assert [pk for pk, s in syllabus_ids(Review, alias).items() if s] == [1, 2, 3, 4]
    assert "Found 4 Answer records to process" in out
    assert "✓ Successfully updated 8 records in total" in out

    backfill(alias, limit=4, batch_size=3)
    assert [pk for pk, s in syllabus_ids(Answer, alias).items() if s] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert [pk for pk, s in syllabus_ids(Review, alias).items() if s] == [1, 2, 3, 4, 5, 6, 7]
    assert "updated 2 records in total" in backfill(alias, limit=4, batch_size=3)
    assert "updated 0 records in total" in backfill(alias, limit=4, batch_size=3)


def test_unfillable_rows_never_use_up_the_limit(world, alias):
    w = world
    answers(w, {1: (None, None), 2: (w.bare, None), 3: (w.ds, w.full_stack), 4: (w.bare, None), 5: (w.fs, None), 6: (w.ds, None), 7: (w.fs, None)})

    backfill(alias, limit=2, batch_size=1)

    assert syllabus_ids(Answer, alias) == {
        1: None,
        2: None,
        3: w.full_stack.pk,
        4: None,
        5: w.full_stack.pk,
        6: w.data_science.pk,
        7: None,
    }


def test_verbosity_zero_prints_only_totals(every_case, alias):
    out = backfill(alias, verbosity=0)

    assert out.splitlines() == [
        "Updated 3 Answer records",
        "Updated 1 Review records",
        "✓ Successfully updated 4 records in total",
    ]


def test_verbosity_one_prints_a_sample_and_progress(world, alias):
    answers(world, {pk: (world.fs, None) for pk in range(1, 26)})

    out = backfill(alias, model="answer", batch_size=10)

    records = [line for line in out.splitlines() if line.startswith("  ✓ Answer")]
    assert [line.split(":")[0] for line in records] == [f"  ✓ Answer {pk}" for pk in range(1, 11)]
    assert "  ... and 15 more (use -v 2 to list every record)" in out
    # Progress lines come at most every few seconds, and once at the end.
    [progress] = [line for line in out.splitlines() if line.startswith("  chunk")]
    assert progress.startswith("  chunk 3/3: ids 21..25, 5 rows in ")
    assert "(25/25 rows, " in progress


def test_verbosity_two_prints_every_record_and_chunk(world, alias):
    answers(world, {pk: (world.fs, None) for pk in range(1, 26)})

    out = backfill(alias, model="answer", batch_size=10, verbosity=2)

    records = [line.split(":")[0] for line in out.splitlines() if line.startswith("  ✓ Answer")]
    assert records == [f"  ✓ Answer {pk}" for pk in range(1, 26)]
    chunks = [line.split(" rows in")[0] for line in out.splitlines() if line.startswith("  chunk")]
    assert chunks == ["  chunk 1/3: ids 1..10, 10", "  chunk 2/3: ids 11..20, 10", "  chunk 3/3: ids 21..25, 5"]
