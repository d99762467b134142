"""The engine's promises: statements per chunk, sparse ids, exact writes, commits, concurrency."""

import threading
import time

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from breathecode.feedback.models import Answer
from breathecode.utils.backfill import Compiler, dialect_for
from breathecode.utils.backfill.dialects import SQLiteDialect
from breathecode.utils.backfill.runner import ChunkDone

from .factories import ANSWERS, answers, make_world, run_all, runner, second_session, syllabus_ids

pytestmark = pytest.mark.django_db(databases="__all__")


def statements(queries):
    """The SELECT and UPDATE statements run, leaving out transaction control (BEGIN, SAVEPOINT, ...)."""
    return [q["sql"].split()[0] for q in queries if q["sql"].split()[0] in ("SELECT", "UPDATE")]


def test_one_boundary_query_and_one_update_per_chunk(world, alias):
    answers(world, {pk: (world.fs, None) for pk in range(1, 8)})
    subject = runner(alias, batch_size=3)

    with CaptureQueriesContext(connections[alias]) as queries:
        events = run_all(subject)

    assert [(e.lo, e.hi, e.rows) for e in events] == [(0, 3, 3), (3, 6, 3), (6, 7, 1)]
    # max id + count (the plan), then boundary + UPDATE per chunk, then the boundary that finds none.
    assert statements(queries) == ["SELECT", "SELECT"] + ["SELECT", "UPDATE"] * 3 + ["SELECT"]


def test_sparse_ids_cost_nothing(world, alias):
    ids = [1, 70_000, 123_456_789, 1_999_999_999, 2_000_000_000]
    answers(world, {pk: (world.ds, None) for pk in ids})
    subject = runner(alias, batch_size=2)

    with CaptureQueriesContext(connections[alias]) as queries:
        events = run_all(subject)

    assert [(e.lo, e.hi) for e in events] == [(0, 70_000), (70_000, 1_999_999_999), (1_999_999_999, 2_000_000_000)]
    assert len(statements(queries)) == 2 + 2 * 3 + 1
    assert set(syllabus_ids(Answer, alias).values()) == {world.data_science.pk}


def test_older_sqlite_uses_correlated_subqueries_with_the_same_result():
    w = make_world("default")
    answers(w, {1: (w.fs, None), 2: (None, None), 3: (w.bare, None), 4: (w.ds, w.full_stack), 5: (w.ds, None)})
    old = SQLiteDialect(connections["default"], sqlite_version=(3, 32, 3))
    subject = runner("default", dialect=old, batch_size=2)

    assert 'SET "syllabus_id" = (SELECT' in subject.update_sql
    assert "AND EXISTS (SELECT 1" in subject.update_sql
    assert sum(e.rows for e in run_all(subject)) == 2
    assert syllabus_ids(Answer, "default") == {1: w.full_stack.pk, 2: None, 3: None, 4: w.full_stack.pk, 5: w.data_science.pk}


AUDIT = {
    "sqlite": [
        "CREATE TABLE audit (answer_id integer)",
        "CREATE TRIGGER answer_audit AFTER UPDATE ON feedback_answer BEGIN INSERT INTO audit VALUES (NEW.id); END",
    ],
    "postgresql": [
        "CREATE TABLE audit (answer_id integer)",
        "CREATE FUNCTION answer_audit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO audit VALUES (NEW.id); RETURN NEW; END $$",
        "CREATE TRIGGER answer_audit AFTER UPDATE ON feedback_answer FOR EACH ROW EXECUTE FUNCTION answer_audit()",
    ],
}


def test_only_rows_that_change_are_written(world, alias):
    w = world
    answers(w, {1: (w.fs, None), 2: (None, None), 3: (w.bare, None), 4: (w.ds, w.data_science), 5: (w.ds, w.full_stack), 6: (w.ds, None)})
    connection = connections[alias]
    with connection.cursor() as cursor:
        for statement in AUDIT[connection.vendor]:
            cursor.execute(statement)

    run_all(runner(alias, batch_size=2))

    with connection.cursor() as cursor:
        cursor.execute("SELECT answer_id FROM audit ORDER BY answer_id")
        assert [pk for (pk,) in cursor.fetchall()] == [1, 6]


def test_rows_inserted_during_the_run_do_not_keep_it_going(world, alias):
    answers(world, {pk: (world.fs, None) for pk in range(1, 7)})
    subject = runner(alias, batch_size=2)
    events = []
    for event in subject.run(subject.plan()):
        events.append(event)
        # Each chunk, the application adds two more fillable answers above the starting maximum.
        start = 100 + 2 * len(events)
        answers(world, {start: (world.fs, None), start + 1: (world.fs, None)})

    assert sum(e.rows for e in events) == 6
    filled = syllabus_ids(Answer, alias)
    assert [pk for pk, s in filled.items() if s] == [1, 2, 3, 4, 5, 6]
    assert len(filled) == 12


# -- what only a second session can show (PostgreSQL, committed data) ---------------------------


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_each_chunk_is_committed_on_its_own(pg_alias):
    w = make_world(pg_alias)
    answers(w, {pk: (w.fs, None) for pk in range(1, 5)})
    subject = runner(pg_alias, batch_size=2)
    seen = []
    with second_session(pg_alias) as other:
        for event in subject.run(subject.plan()):
            rows = other.execute("SELECT id FROM feedback_answer WHERE syllabus_id IS NOT NULL ORDER BY id")
            seen.append([pk for (pk,) in rows])

    assert seen == [[1, 2], [1, 2, 3, 4]]


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_concurrent_writers_value_is_never_overwritten(pg_alias):
    w = make_world(pg_alias)
    answers(w, {pk: (w.fs, None) for pk in range(1, 5)})
    with second_session(pg_alias) as other:
        # The application is halfway through setting answer 3 to data-science when the chunk arrives.
        other.autocommit = False
        other.execute("UPDATE feedback_answer SET syllabus_id = %s WHERE id = 3", [w.data_science.pk])
        committer = threading.Timer(0.5, other.commit)
        committer.start()
        started = time.monotonic()
        events = run_all(runner(pg_alias, batch_size=10))
        committer.join()

    assert time.monotonic() - started >= 0.4  # the chunk waited for the writer's row lock
    assert [e.rows for e in events if isinstance(e, ChunkDone)] == [3]
    assert syllabus_ids(Answer, pg_alias) == {1: w.full_stack.pk, 2: w.full_stack.pk, 3: w.data_science.pk, 4: w.full_stack.pk}


def test_the_chunk_statements_have_the_designed_shape(alias):
    """The boundary query and the UPDATE, written out by hand with the backend's own quoting."""
    q = connections[alias].ops.quote_name
    a, c, v = q("feedback_answer"), q("admissions_cohort"), q("admissions_syllabusversion")
    eligible = (
        f"{c}.{q('id')} = {a}.{q('cohort_id')} AND {v}.{q('id')} = {c}.{q('syllabus_version_id')} "
        f"AND {a}.{q('syllabus_id')} IS NULL AND {v}.{q('syllabus_id')} IS NOT NULL"
    )
    compiler = Compiler(ANSWERS, dialect_for(connections[alias]))

    def flat(sql):
        return " ".join(sql.split())

    assert flat(compiler.update()) == (
        f"UPDATE {a} SET {q('syllabus_id')} = {v}.{q('syllabus_id')} FROM {c}, {v} "
        f"WHERE {eligible} AND {a}.{q('id')} > %(lo)s AND {a}.{q('id')} <= %(hi)s"
    )
    assert flat(compiler.boundary()) == (
        f"SELECT MAX(chunk.{q('id')}), COUNT(*) FROM ( SELECT {a}.{q('id')} FROM {a}, {c}, {v} "
        f"WHERE {eligible} AND {a}.{q('id')} > %(lo)s AND {a}.{q('id')} <= %(stop)s "
        f"ORDER BY {a}.{q('id')} LIMIT %(size)s ) AS chunk"
    )
