"""--workers: disjoint id ranges on several PostgreSQL connections at once."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from breathecode.feedback.models import Answer

from .factories import answers, make_world, syllabus_ids

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


def backfill(alias, **options):
    out = StringIO()
    call_command("backfill_feedback_syllabus", database=alias, model="answer", stdout=out, no_color=True, **options)
    return out.getvalue()


def execute(alias, *statements):
    with connections[alias].cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@pytest.fixture
def trigger(pg_alias):
    """``trigger(name, body)`` adds a BEFORE/AFTER UPDATE row trigger on feedback_answer, dropped after the test."""
    created = []

    def add(name, body, when="BEFORE"):
        execute(
            pg_alias,
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NEW; END $$",
            f"CREATE TRIGGER {name} {when} UPDATE ON feedback_answer FOR EACH ROW EXECUTE FUNCTION {name}()",
        )
        created.append(name)

    yield add
    execute(pg_alias, *(f"DROP FUNCTION {name}() CASCADE" for name in created))


@pytest.fixture
def table(pg_alias):
    """Answers 1..30: every third one (3, 6, ..., 30) has no cohort; the other 20 can be filled."""
    w = make_world(pg_alias)
    answers(w, {pk: (None if pk % 3 == 0 else w.fs, None) for pk in range(1, 31)})
    return w


FILLABLE = [pk for pk in range(1, 31) if pk % 3]


def filled(alias):
    return [pk for pk, s in syllabus_ids(Answer, alias).items() if s]


def test_every_row_is_written_exactly_once(table, pg_alias, trigger):
    execute(pg_alias, "CREATE TABLE audit (answer_id integer)")
    trigger("audit", "INSERT INTO audit VALUES (NEW.id);", when="AFTER")
    try:
        out = backfill(pg_alias, workers=3, batch_size=2)
        with connections[pg_alias].cursor() as cursor:
            cursor.execute("SELECT answer_id FROM audit ORDER BY answer_id")
            written = [pk for (pk,) in cursor.fetchall()]
    finally:
        execute(pg_alias, "DROP TABLE audit CASCADE")

    assert written == FILLABLE
    assert filled(pg_alias) == FILLABLE
    assert "Updated 20 Answer records" in out


def test_limit_stays_exact_and_lowest_ids_first(table, pg_alias):
    backfill(pg_alias, workers=3, batch_size=2, limit=7)

    assert filled(pg_alias) == [1, 2, 4, 5, 7, 8, 10]


def test_refused_rows_from_every_worker_are_reported(table, pg_alias, trigger):
    # 20 rows in 3 parts of 7, 7 and 6 eligible rows: 2 is in the first part, 29 in the last.
    trigger("refuse", "IF NEW.id IN (2, 29) THEN RAISE EXCEPTION 'answer % is frozen', NEW.id; END IF;")
    out = StringIO()
    with pytest.raises(CommandError, match="^2 records could not be updated"):
        call_command(
            "backfill_feedback_syllabus", database=pg_alias, model="answer", workers=3, batch_size=4, stdout=out
        )

    assert "Errors: 2" in out.getvalue()
    assert "  - Answer 2: answer 2 is frozen" in out.getvalue()
    assert "  - Answer 29: answer 29 is frozen" in out.getvalue()
    assert filled(pg_alias) == [pk for pk in FILLABLE if pk not in (2, 29)]


def test_a_failed_worker_does_not_lose_the_others_work(table, pg_alias, trigger):
    # The middle part (eligible rows 8..14: ids 11..20) stops at id 14, with an error that ends a run.
    trigger(
        "deny", "IF NEW.id = 14 THEN RAISE EXCEPTION 'no access' USING ERRCODE = 'insufficient_privilege'; END IF;"
    )

    with pytest.raises(CommandError, match=r"^Answer ids 14\.\.16: no access"):
        backfill(pg_alias, workers=3, batch_size=2)

    # First part: all 7 rows. Middle part: its first chunk (11, 13) committed, then 14 fails the
    # chunk (14, 16) and ends that part. Last part: all 6 rows.
    assert filled(pg_alias) == [1, 2, 4, 5, 7, 8, 10, 11, 13, 22, 23, 25, 26, 28, 29]


def test_sqlite_refuses_workers():
    with pytest.raises(CommandError, match="^--workers needs a database that takes several writers at once; sqlite"):
        backfill("default", workers=2)


def test_a_refused_row_within_the_limit_counts_as_with_one_worker(table, pg_alias, trigger):
    trigger("refuse", "IF NEW.id = 4 THEN RAISE EXCEPTION 'answer 4 is frozen'; END IF;")

    with pytest.raises(CommandError, match="^1 records could not be updated"):
        backfill(pg_alias, workers=2, batch_size=2, limit=6)

    # The six lowest fillable ids are 1, 2, 4, 5, 7, 8; answer 4 is refused and not replaced.
    assert filled(pg_alias) == [1, 2, 5, 7, 8]
