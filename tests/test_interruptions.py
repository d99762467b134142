"""Interrupting a real run: kill -9, Ctrl-C (SIGINT) and SIGTERM, then a rerun.

Every run is a real ``python manage.py backfill_feedback_syllabus`` process on
a scratch PostgreSQL database filled by ``create_demo_data --answers 60000``.
The expected end state is read with plain SQL from the untouched data
(``COALESCE(syllabus_id, cohort -> version -> syllabus)``), never from the
command. Hand-worked numbers: row n can be filled unless n % 16 is 0, 4, 8 or
12, so 60000 answers hold 3750 * 12 = 45000 rows to fill and 6000 reviews
hold 375 * 12 = 4500; with --batch-size 2000 every chunk but a model's last
fills exactly 2000 of them, lowest ids first.
"""

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
TABLES = ("feedback_answer", "feedback_review")
FILLABLE = {"feedback_answer": 45_000, "feedback_review": 4_500}
BATCH = 2000
RUN_ARGS = ["--batch-size", str(BATCH), "--sleep", "0.05"]
CHUNK_LINE = re.compile(r"^  chunk (\d+)/(\d+): ids (\d+)\.\.(\d+), (\d+) rows")


def server() -> dict:
    if "postgres" not in settings.DATABASES:
        pytest.skip(f"PostgreSQL tests SKIPPED: {settings.POSTGRES_SOURCE}")
    return settings.DATABASES["postgres"]


def connect(dbname, **kwargs):
    entry = server()
    return psycopg.connect(
        host=entry["HOST"], port=entry["PORT"] or 5432, user=entry["USER"], password=entry["PASSWORD"] or None,
        dbname=dbname, **kwargs,
    )


def url(dbname):
    entry = server()
    auth = quote(entry["USER"] or "", safe="")
    if entry["PASSWORD"]:
        auth += ":" + quote(entry["PASSWORD"], safe="")
    return f"postgres://{auth}@{entry['HOST']}:{entry['PORT'] or 5432}/{dbname}"


def env(dbname):
    return {
        **os.environ,
        "DATABASE_URL": url(dbname),
        "DJANGO_SETTINGS_MODULE": "breathecode.settings",
        "PYTHONUNBUFFERED": "1",
    }


def manage(dbname, *args, timeout=120):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env(dbname), capture_output=True, text=True,
        timeout=timeout,
    )


def start(dbname, *args):
    return subprocess.Popen(
        [sys.executable, "manage.py", "backfill_feedback_syllabus", *args],
        cwd=ROOT, env=env(dbname), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def admin(sql):
    with connect("postgres", autocommit=True) as conn:
        conn.execute(sql)


def state(dbname):
    """``{table: [(id, syllabus_id), ...]}`` in id order."""
    with connect(dbname) as conn:
        return {
            table: conn.execute(f"SELECT id, syllabus_id FROM {table} ORDER BY id").fetchall() for table in TABLES
        }


def resolved(dbname):
    """The end state one clean run must reach, by plain SQL over the cohort -> version -> syllabus chain."""
    with connect(dbname) as conn:
        return {
            table: conn.execute(
                f"SELECT a.id, COALESCE(a.syllabus_id, sv.syllabus_id) FROM {table} a "
                "LEFT JOIN admissions_cohort c ON c.id = a.cohort_id "
                "LEFT JOIN admissions_syllabusversion sv ON sv.id = c.syllabus_version_id ORDER BY a.id"
            ).fetchall()
            for table in TABLES
        }


@pytest.fixture(scope="module")
def pristine():
    """Demo data, migrated and filled once, never backfilled; yields (name, before, expected, fillable ids)."""
    name = f"backfill_intr_{os.getpid()}"
    admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin(f"CREATE DATABASE {name}")
    try:
        result = manage(name, "migrate", "-v", "0")
        assert result.returncode == 0, result.stderr
        result = manage(name, "create_demo_data", "--answers", "60000")
        assert result.returncode == 0, result.stderr
        before, expected = state(name), resolved(name)
        fillable = {
            table: [pk for (pk, now), (_, then) in zip(before[table], expected[table]) if now is None and then]
            for table in TABLES
        }
        # The n % 16 rule, worked by hand: 12 of every 16 rows can be filled.
        assert {table: len(ids) for table, ids in fillable.items()} == FILLABLE
        assert len(before["feedback_answer"]) == 60_000 and len(before["feedback_review"]) == 6_000
        yield name, before, expected, fillable
    finally:
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


_copies = iter(range(1, 1000))


@pytest.fixture
def copy(pristine):
    """A fresh copy of the pristine data; yields (name, before, expected, fillable ids)."""
    template, *rest = pristine
    name = f"{template}_{next(_copies)}"
    admin(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield (name, *rest)
    finally:
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def check_prefix(dbname, before, expected, fillable):
    """Only fillable rows changed, each to its cohort's syllabus; the filled ones are the lowest fillable
    ids, in whole chunks of BATCH; reviews start only once every answer is done. Returns rows filled per table."""
    now = state(dbname)
    filled = {}
    for table in TABLES:
        changed = [pk for (pk, a), (_, b) in zip(now[table], before[table]) if a != b]
        assert set(changed) <= set(fillable[table]), f"{table}: a row that needs no backfill changed"
        values, wanted = dict(now[table]), dict(expected[table])
        assert [values[pk] for pk in changed] == [wanted[pk] for pk in changed]
        # A prefix of the fillable ids, in id order: chunks commit in order and atomically.
        assert changed == fillable[table][: len(changed)], f"{table}: filled rows are not the lowest fillable ids"
        assert len(changed) % BATCH == 0 or len(changed) == FILLABLE[table], f"{table}: half a chunk committed"
        filled[table] = len(changed)
    if filled["feedback_answer"] < FILLABLE["feedback_answer"]:
        assert filled["feedback_review"] == 0, "reviews were touched before answers finished"
    return filled


def read_until_chunks(process, count, delay=0.0):
    """Read stdout until ``count`` chunk lines were printed (then wait ``delay``); returns the lines read."""
    lines = []
    seen = 0
    for line in process.stdout:
        lines.append(line)
        if CHUNK_LINE.match(line):
            seen += 1
            if seen == count:
                break
    assert seen == count, f"the run ended after {seen} chunks:\n{''.join(lines[-20:])}"
    if delay:
        time.sleep(delay)
    return lines


def rerun_reaches(dbname, expected):
    result = manage(dbname, "backfill_feedback_syllabus", "--batch-size", str(BATCH), "-v", "0")
    assert result.returncode == 0, result.stderr
    assert state(dbname) == expected
    again = manage(dbname, "backfill_feedback_syllabus", "-v", "0")
    assert again.returncode == 0, again.stderr
    assert "Successfully updated 0 records in total" in again.stdout


def test_a_clean_run_reaches_the_expected_state(copy):
    name, before, expected, fillable = copy
    result = manage(name, "backfill_feedback_syllabus", "--batch-size", str(BATCH), "-v", "0")

    assert result.returncode == 0, result.stderr
    assert "Successfully updated 49500 records in total" in result.stdout  # 45000 + 4500
    assert state(name) == expected


@pytest.mark.parametrize("trial", [1, 2, 3])
def test_kill_9_at_a_random_chunk_then_rerun(copy, trial):
    name, before, expected, fillable = copy
    rng = random.Random(20240115 + trial)
    # 23 answer chunks then 3 review chunks; stop somewhere in the answers.
    chunks, delay = rng.randint(2, 20), rng.uniform(0.0, 0.12)
    process = start(name, *RUN_ARGS, "-v", "2")
    try:
        read_until_chunks(process, chunks, delay)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL

    filled = check_prefix(name, before, expected, fillable)
    # Every chunk whose line was printed had committed; the run was killed long before its end.
    assert chunks * BATCH <= filled["feedback_answer"] < FILLABLE["feedback_answer"]
    rerun_reaches(name, expected)


@contextlib.contextmanager
def row_locked(dbname, pk):
    """Hold a row lock on answer ``pk`` from another session until the block ends."""
    with connect(dbname) as conn:
        conn.execute("SELECT id FROM feedback_answer WHERE id = %s FOR UPDATE", [pk])
        yield conn
        conn.rollback()


def wait_for_lock_wait(conn, dbname):
    """Wait until some session of ``dbname`` waits for a lock (the run, stuck in its chunk)."""
    for _ in range(100):
        (waiting,) = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'", [dbname]
        ).fetchone()
        if waiting:
            return
        time.sleep(0.05)
    pytest.fail("the run never reached the locked row")


# Chunk 7 holds fillable answers 12001..14000; the 12001st fillable id is 16001 (1000 blocks of
# 16 ids hold 12000 of them). Chunk 6 ends at id 15999 (the 12th fillable of block 1000), chunk 7
# at 18666 (1166 blocks = 13992 rows up to id 18656, then 18657..18666 holds 8 more).
LOCKED_ID, END_OF_CHUNK_6, END_OF_CHUNK_7 = 16001, 15999, 18666


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_one_stop_signal_finishes_the_chunk_in_flight_then_stops(copy, signum, status):
    name, before, expected, fillable = copy
    assert fillable["feedback_answer"][12000] == LOCKED_ID
    with row_locked(name, LOCKED_ID) as locker:
        process = start(name, *RUN_ARGS, "--lock-timeout", "20000", "-v", "2")
        try:
            lines = read_until_chunks(process, 6)
            wait_for_lock_wait(locker, name)  # chunk 7 is in flight, waiting for the row
            process.send_signal(signum)
            time.sleep(0.3)
            assert process.poll() is None, "the run did not wait for its chunk in flight"
            locker.rollback()  # chunk 7 can now finish
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    out = "".join(lines) + out

    assert process.returncode == status, err
    filled = check_prefix(name, before, expected, fillable)
    assert filled == {"feedback_answer": 14000, "feedback_review": 0}
    chunk_lines = [line for line in out.splitlines() if CHUNK_LINE.match(line)]
    assert len(chunk_lines) == 7
    assert chunk_lines[-1].startswith(f"  chunk 7/23: ids {END_OF_CHUNK_6 + 1}..{END_OF_CHUNK_7}, 2000 rows")
    assert "Updated 14000 Answer records" in out
    assert f"Stopped by {signum.name}: updated 14000 records in total" in out
    assert "Processing Review model" not in out
    assert err.strip().splitlines()[-1] == (
        f"CommandError: Stopped by {signum.name}; committed Answer up to id {END_OF_CHUNK_7}. "
        "Run the command again to finish."
    )
    assert "Traceback" not in err
    rerun_reaches(name, expected)


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_one_stop_signal_between_chunks_stops_before_the_next(copy, signum, status):
    name, before, expected, fillable = copy
    process = start(name, *RUN_ARGS, "-v", "2")
    try:
        lines = read_until_chunks(process, 5)
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    out = "".join(lines) + out

    assert process.returncode == status, err
    filled = check_prefix(name, before, expected, fillable)
    answers = filled["feedback_answer"]
    assert 5 * BATCH <= answers < FILLABLE["feedback_answer"]
    assert filled["feedback_review"] == 0
    # One chunk line per committed chunk: no chunk was left unreported.
    assert len([line for line in out.splitlines() if CHUNK_LINE.match(line)]) == answers // BATCH
    assert f"Updated {answers} Answer records" in out
    assert f"Stopped by {signum.name}: updated {answers} records in total" in out
    assert "Processing Review model" not in out
    last_id = fillable["feedback_answer"][answers - 1]
    assert err.strip().splitlines()[-1] == (
        f"CommandError: Stopped by {signum.name}; committed Answer up to id {last_id}. "
        "Run the command again to finish."
    )
    assert "Traceback" not in err
    rerun_reaches(name, expected)


def test_a_second_signal_abandons_the_chunk_in_flight_and_reports_what_was_committed(copy):
    name, before, expected, fillable = copy
    with row_locked(name, LOCKED_ID) as locker:
        process = start(name, *RUN_ARGS, "--lock-timeout", "20000", "-v", "2")
        try:
            lines = read_until_chunks(process, 6)
            wait_for_lock_wait(locker, name)
            process.send_signal(signal.SIGINT)
            time.sleep(0.2)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    out = "".join(lines) + out

    assert process.returncode == 130, err
    filled = check_prefix(name, before, expected, fillable)
    assert filled == {"feedback_answer": 12000, "feedback_review": 0}  # chunk 7 rolled back
    assert "Traceback" not in err
    assert "Stopped by SIGINT: updated 12000 records in total" in out, out[-500:]
    assert err.strip().splitlines()[-1] == (
        f"CommandError: Stopped by SIGINT; committed Answer up to id {END_OF_CHUNK_6}. "
        "Run the command again to finish."
    )
    rerun_reaches(name, expected)
