"""Running while the application works: locks, refused rows, concurrent writers, pacing, reports."""

import json
import threading
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from breathecode.feedback.models import Answer
from breathecode.utils.backfill.runner import ChunkDone, Retrying, RowFailed

from .factories import answers, make_world, reviews, run_all, runner, second_session, syllabus_ids

pytestmark = pytest.mark.django_db(databases="__all__")


def backfill(alias, *args, **options):
    out, err = StringIO(), StringIO()
    call_command("backfill_feedback_syllabus", *args, database=alias, stdout=out, stderr=err, no_color=True, **options)
    return out.getvalue(), err.getvalue()


REJECT_ANSWER_5 = {
    "sqlite": [
        "CREATE TRIGGER reject_5 BEFORE UPDATE ON feedback_answer WHEN NEW.id = 5 "
        "BEGIN SELECT RAISE(ABORT, 'answer 5 is frozen'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION reject_5() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.id = 5 THEN RAISE EXCEPTION 'answer 5 is frozen'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER reject_5 BEFORE UPDATE ON feedback_answer FOR EACH ROW EXECUTE FUNCTION reject_5()",
    ],
}
DROP_REJECT = {"sqlite": ["DROP TRIGGER reject_5"], "postgresql": ["DROP TRIGGER reject_5 ON feedback_answer"]}


def execute(alias, *statements):
    with connections[alias].cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def test_a_refused_row_is_isolated_reported_and_filled_by_a_rerun(world, alias):
    answers(world, {pk: (world.fs, None) for pk in range(1, 10)})
    execute(alias, *REJECT_ANSWER_5[connections[alias].vendor])

    with pytest.raises(CommandError, match="^1 records could not be updated"):
        backfill(alias, model="answer", batch_size=4)

    filled = syllabus_ids(Answer, alias)
    assert [pk for pk, s in filled.items() if s is None] == [5]

    execute(alias, *DROP_REJECT[connections[alias].vendor])
    out, _ = backfill(alias, model="answer")
    assert "Updated 1 Answer records" in out
    assert set(syllabus_ids(Answer, alias).values()) == {world.full_stack.pk}


def test_refused_rows_are_listed_first_five_then_a_count(world, alias):
    answers(world, {pk: (world.fs, None) for pk in range(1, 21)})
    vendor = connections[alias].vendor
    execute(
        alias,
        *{
            "sqlite": [
                "CREATE TRIGGER reject_odd BEFORE UPDATE ON feedback_answer WHEN NEW.id % 2 = 1 "
                "BEGIN SELECT RAISE(ABORT, 'odd answers are frozen'); END"
            ],
            "postgresql": [
                "CREATE FUNCTION reject_odd() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.id % 2 = 1 THEN RAISE EXCEPTION 'odd answers are frozen'; END IF; RETURN NEW; END $$",
                "CREATE TRIGGER reject_odd BEFORE UPDATE ON feedback_answer FOR EACH ROW EXECUTE FUNCTION reject_odd()",
            ],
        }[vendor],
    )
    out = StringIO()
    with pytest.raises(CommandError, match="^10 records could not be updated"):
        call_command("backfill_feedback_syllabus", database=alias, model="answer", batch_size=8, stdout=out, no_color=True)

    lines = out.getvalue().splitlines()
    start = lines.index("Errors: 10")
    assert lines[start + 1 : start + 7] == [
        "  - Answer 1: odd answers are frozen",
        "  - Answer 3: odd answers are frozen",
        "  - Answer 5: odd answers are frozen",
        "  - Answer 7: odd answers are frozen",
        "  - Answer 9: odd answers are frozen",
        "  ... and 5 more",
    ]
    assert "Updated 10 Answer records" in out.getvalue()
    assert "✗ Updated 10 records in total; 10 could not be updated" in out.getvalue()
    assert [pk for pk, s in syllabus_ids(Answer, alias).items() if s] == list(range(2, 21, 2))


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_row_lock_is_waited_for_then_retried_until_released(pg_alias):
    w = make_world(pg_alias)
    answers(w, {pk: (w.fs, None) for pk in range(1, 7)})
    with second_session(pg_alias) as other:
        other.autocommit = False
        other.execute("SELECT 1 FROM feedback_answer WHERE id = 4 FOR UPDATE")
        releaser = threading.Timer(0.8, other.rollback)
        releaser.start()
        events = run_all(runner(pg_alias, batch_size=10, lock_timeout_ms=200, retries=8))
        releaser.join()

    retries = [e for e in events if isinstance(e, Retrying)]
    assert retries and all("lock timeout" in e.message for e in retries)
    assert [e.rows for e in events if isinstance(e, ChunkDone)] == [6]
    assert set(syllabus_ids(Answer, pg_alias).values()) == {w.full_stack.pk}


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_lock_never_released_is_reported_without_hanging(pg_alias):
    w = make_world(pg_alias)
    answers(w, {pk: (w.fs, None) for pk in range(1, 9)})
    with second_session(pg_alias) as other:
        other.autocommit = False
        other.execute("SELECT 1 FROM feedback_answer WHERE id = 6 FOR UPDATE")
        started = time.monotonic()
        with pytest.raises(CommandError, match="^1 records could not be updated"):
            backfill(pg_alias, model="answer", batch_size=8, lock_timeout=100, retries=1)
        elapsed = time.monotonic() - started
        other.rollback()

    # Split down to the locked row: 8 -> 4 -> 2 -> 1 rows, each tried twice at 0.1 s, plus back-off.
    assert elapsed < 10
    assert [pk for pk, s in syllabus_ids(Answer, pg_alias).items() if s is None] == [6]


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_concurrent_writer_thread_never_loses_a_value(pg_alias):
    w = make_world(pg_alias)
    rows = 30_000
    answers(w, {pk: (w.fs, None) for pk in range(1, rows + 1)})
    done = threading.Event()
    written = {}

    def application():
        # Sets data-science on every 7th answer, walking the table while the backfill runs,
        # and inserts new answers above the starting maximum.
        with second_session(pg_alias) as session:
            pk = 7
            while not done.is_set() and pk <= rows:
                session.execute("UPDATE feedback_answer SET syllabus_id = %s WHERE id = %s", [w.data_science.pk, pk])
                written[pk] = w.data_science.pk
                pk += 7
            session.execute(
                "INSERT INTO feedback_answer (id, title, lowest, highest, lang, status, cohort_id, created_at, updated_at) "
                "VALUES (%s, '', '', '', 'en', 'PENDING', %s, now(), now())",
                [rows + 1, w.fs.pk],
            )

    writer = threading.Thread(target=application)
    writer.start()
    events = run_all(runner(pg_alias, batch_size=1000))
    done.set()
    writer.join()

    final = syllabus_ids(Answer, pg_alias)
    for pk, value in written.items():
        assert final[pk] == value, f"answer {pk}: the writer's value was overwritten"
    assert all(final[pk] is not None for pk in range(1, rows + 1))
    assert not [e for e in events if isinstance(e, RowFailed)]


def test_target_chunk_time_steers_the_batch_size(world, alias):
    answers(world, {pk: (world.fs, None) for pk in range(1, 20_001)})
    subject = runner(alias, batch_size=100, target_chunk_seconds=0.05)

    sizes = [e.hi - e.lo for e in run_all(subject)]

    # From 100 rows the chunks grow (at most x1.41 a step) toward 50 ms, far above 100 rows here.
    assert sizes[0] == 100
    assert 100 < sizes[1] <= 141
    assert max(sizes) > 1000
    assert sum(sizes) == 20_000


def test_sleep_paces_the_chunks(world, alias):
    answers(world, {pk: (world.fs, None) for pk in range(1, 5)})
    started = time.monotonic()

    run_all(runner(alias, batch_size=1, sleep=0.1))

    assert time.monotonic() - started >= 0.3  # three pauses between four chunks


def test_start_id_resumes_after_an_id(world, alias):
    answers(world, {pk: (world.fs, None) for pk in range(1, 7)})

    out, _ = backfill(alias, model="answer", start_id=4)

    assert "Found 2 Answer records to process" in out
    assert [pk for pk, s in syllabus_ids(Answer, alias).items() if s] == [5, 6]


@pytest.fixture
def every_category(world):
    w = world
    answers(w, {1: (w.fs, None), 2: (None, None), 3: (w.bare, None), 4: (w.ds, w.data_science), 5: (w.ds, w.full_stack), 6: (w.ds, None), 7: (None, w.full_stack)})
    reviews(w, {1: (w.bare, None), 2: (w.fs, w.full_stack)})
    return w


def test_check_counts_every_category_and_exits_1_while_work_remains(every_category, alias):
    out = StringIO()
    with pytest.raises(CommandError, match="^2 records still need the backfill.") as raised:
        call_command("backfill_feedback_syllabus", database=alias, check=True, json=True, stdout=out)
    assert raised.value.returncode == 1

    report = json.loads(out.getvalue())
    assert report["Answer"] == {
        "total": 7,
        "to fill": 2,
        "answer without cohort": 1,
        "cohort without syllabus version": 1,
        "syllabus version without syllabus": 0,
        "already set, same as source": 1,
        "already set, differs from source": 2,  # answer 5 (another syllabus) and 7 (no cohort at all)
    }
    assert report["Review"] == {
        "total": 2,
        "to fill": 0,
        "review without cohort": 0,
        "cohort without syllabus version": 1,
        "syllabus version without syllabus": 0,
        "already set, same as source": 1,
        "already set, differs from source": 0,
    }

    backfill(alias)
    out, _ = backfill(alias, check=True)  # nothing left to fill: exit 0
    assert "  to fill                                             0" in out


def test_json_summary_is_the_only_stdout_and_matches_the_database(every_category, alias):
    out, _ = backfill(alias, json=True, batch_size=1)

    summary = json.loads(out)
    assert summary["exit_reason"] == "completed"
    assert summary["total_updated"] == 2
    timings = {"seconds": None, "longest_chunk_seconds": None, "median_chunk_seconds": None}
    assert summary["models"]["Answer"] | timings == {
        "found": 2, "updated": 2, "failed": 0, "failed_ids": [], "chunks": 2, "batch_size": 1, "last_id": 6,
        **timings,
    }
    answer = summary["models"]["Answer"]
    assert 0 <= answer["median_chunk_seconds"] <= answer["longest_chunk_seconds"] <= answer["seconds"]
    assert summary["models"]["Review"]["updated"] == 0
    assert [pk for pk, s in syllabus_ids(Answer, alias).items() if s] == [1, 4, 5, 6, 7]


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_read_only_database_refuses_a_real_run_but_not_a_dry_run(alias):
    world = make_world(alias)
    answers(world, {1: (world.fs, None)})
    read_only = {"sqlite": "PRAGMA query_only = ON", "postgresql": "SET default_transaction_read_only = on"}
    reset = {"sqlite": "PRAGMA query_only = OFF", "postgresql": "SET default_transaction_read_only = off"}
    vendor = connections[alias].vendor
    execute(alias, read_only[vendor])
    try:
        with pytest.raises(CommandError, match=f"^Database '{alias}' is read-only"):
            backfill(alias)
        out, _ = backfill(alias, dry_run=True)
        assert "DRY RUN: Would update 1 records in total" in out
    finally:
        execute(alias, reset[vendor])
    assert syllabus_ids(Answer, alias) == {1: None}


def test_replica_lag_option_needs_postgresql(world):
    with pytest.raises(CommandError, match="^--max-replica-lag needs PostgreSQL; database 'default' is sqlite."):
        backfill("default", max_replica_lag=1.0)


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_permission_denied_gets_one_line_and_writes_nothing(pg_alias):
    w = make_world(pg_alias)
    answers(w, {1: (w.fs, None), 2: (w.fs, None)})
    execute(pg_alias, "CREATE ROLE reader NOLOGIN", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader", "SET ROLE reader")
    try:
        with pytest.raises(CommandError) as raised:
            backfill(pg_alias, model="answer")
    finally:
        execute(pg_alias, "RESET ROLE", "DROP OWNED BY reader", "DROP ROLE reader")

    assert str(raised.value) == (
        "Answer ids 1..2: permission denied for table feedback_answer "
        "(committed: 0 rows; run the command again to finish)."
    )
    assert syllabus_ids(Answer, pg_alias) == {1: None, 2: None}


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_losing_the_connection_mid_run_says_how_far_it_got(pg_alias):
    w = make_world(pg_alias)
    answers(w, {pk: (w.fs, None) for pk in range(1, 7)})
    backend = connections[pg_alias].connection.info.backend_pid

    def administrator():
        with second_session(pg_alias) as session:
            # Wait until the second chunk has committed, then cut the backfill's connection.
            while session.execute("SELECT count(*) FROM feedback_answer WHERE syllabus_id IS NOT NULL").fetchone()[0] < 4:
                time.sleep(0.02)
            session.execute("SELECT pg_terminate_backend(%s)", [backend])

    cutter = threading.Thread(target=administrator)
    cutter.start()
    with pytest.raises(CommandError) as raised:
        backfill(pg_alias, model="answer", batch_size=2, sleep=0.5)
    cutter.join()
    connections[pg_alias].close()

    assert "(committed: 4 rows, up to id 4; run the command again to finish)." in str(raised.value)
    assert [pk for pk, s in syllabus_ids(Answer, pg_alias).items() if s] == [1, 2, 3, 4]


def test_a_refused_last_row_is_reported_at_default_verbosity(world, alias):
    answers(world, {pk: (world.fs, None) for pk in range(1, 6)})
    execute(alias, *REJECT_ANSWER_5[connections[alias].vendor])
    out = StringIO()

    with pytest.raises(CommandError, match="^1 records could not be updated"):
        call_command("backfill_feedback_syllabus", database=alias, model="answer", batch_size=2, stdout=out)

    assert "Updated 4 Answer records" in out.getvalue()
    assert "  - Answer 5: answer 5 is frozen" in out.getvalue()
    assert [pk for pk, s in syllabus_ids(Answer, alias).items() if s is None] == [5]


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_person_cancelling_the_statement_stops_the_run(pg_alias):
    w = make_world(pg_alias)
    answers(w, {pk: (w.fs, None) for pk in range(1, 5)})
    # Answer 3's update takes a long time, so a DBA sees it and cancels it (pg_cancel_backend).
    execute(
        pg_alias,
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.id = 3 THEN PERFORM pg_sleep(30); END IF; RETURN NEW; END $$",
        "CREATE TRIGGER slow BEFORE UPDATE ON feedback_answer FOR EACH ROW EXECUTE FUNCTION slow()",
    )
    backend = connections[pg_alias].connection.info.backend_pid

    def dba():
        with second_session(pg_alias) as session:
            while not session.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event = 'PgSleep'", [backend]
            ).fetchone():
                time.sleep(0.02)
            session.execute("SELECT pg_cancel_backend(%s)", [backend])

    canceller = threading.Thread(target=dba)
    canceller.start()
    try:
        with pytest.raises(CommandError) as raised:
            backfill(pg_alias, model="answer", batch_size=2)
    finally:
        canceller.join()
        execute(pg_alias, "DROP FUNCTION slow() CASCADE")

    # Not retried, not split: the run stops with the first chunk committed.
    assert str(raised.value) == (
        "Answer ids 3..4: canceling statement due to user request "
        "(committed: 2 rows, up to id 2; run the command again to finish)."
    )
    assert [pk for pk, s in syllabus_ids(Answer, pg_alias).items() if s] == [1, 2]


def test_a_refused_row_within_the_limit_is_reported_not_replaced(world, alias):
    answers(world, {pk: (world.fs, None) for pk in range(1, 11)})
    execute(alias, *REJECT_ANSWER_5[connections[alias].vendor])
    out = StringIO()

    with pytest.raises(CommandError, match="^1 records could not be updated"):
        call_command(
            "backfill_feedback_syllabus", database=alias, model="answer", limit=6, batch_size=4, json=True, stdout=out
        )

    summary = json.loads(out.getvalue())["models"]["Answer"]
    assert (summary["updated"], summary["failed"], summary["failed_ids"]) == (5, 1, [5])
    assert [pk for pk, s in syllabus_ids(Answer, alias).items() if s] == [1, 2, 3, 4, 6]
