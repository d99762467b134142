"""Bad input: one clear line on stderr, a non-zero exit, no traceback, nothing written."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from breathecode.feedback.models import Answer

from .factories import answers, syllabus_ids

ROOT = Path(__file__).resolve().parent.parent


def manage(*args, database_url):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "breathecode.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def before_syllabus(tmp_path_factory):
    """An SQLite database migrated up to feedback 0001: the tables exist, the syllabus column does not."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'old.sqlite3'}"
    assert manage("migrate", "-v", "0", database_url=url).returncode == 0
    assert manage("migrate", "feedback", "0001", "-v", "0", database_url=url).returncode == 0
    return url


@pytest.mark.parametrize(
    "args, status, message",
    [
        (["--limit", "0"], 1, "CommandError: --limit must be a whole number of at least 1, not 0."),
        (["--limit", "-5"], 1, "CommandError: --limit must be a whole number of at least 1, not -5."),
        (["--batch-size", "0"], 1, "CommandError: --batch-size must be a whole number of at least 1, not 0."),
        (["--limit", "ten"], 2, "backfill_feedback_syllabus: error: argument --limit: invalid int value: 'ten'"),
        (["--batch-size", "1.5"], 2, "backfill_feedback_syllabus: error: argument --batch-size: invalid int value: '1.5'"),
        (["--model", "survey"], 2, "backfill_feedback_syllabus: error: argument --model: invalid choice: 'survey'"),
    ],
)
def test_bad_options_get_one_line_and_a_non_zero_exit(args, status, message, before_syllabus):
    result = manage("backfill_feedback_syllabus", *args, database_url=before_syllabus)

    assert result.returncode == status
    [line] = result.stderr.strip().splitlines()
    assert message in line
    assert result.stdout == ""


def test_missing_syllabus_column_names_the_migration(before_syllabus):
    result = manage("backfill_feedback_syllabus", database_url=before_syllabus)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: Column feedback_answer.syllabus_id does not exist in database 'default'. "
        "Apply the migration that adds it first: python manage.py migrate feedback 0002_add_syllabus --database default"
    ]


def test_unmigrated_database_says_to_migrate(tmp_path):
    result = manage("backfill_feedback_syllabus", database_url=f"sqlite:///{tmp_path / 'empty.sqlite3'}")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: Table feedback_answer does not exist in database 'default'. "
        "Apply the migrations first: python manage.py migrate --database default"
    ]


def test_unreachable_database_gets_one_line_and_traceback_on_request():
    url = "postgres://postgres@127.0.0.1:1/nothing_here"

    result = manage("backfill_feedback_syllabus", database_url=url)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("CommandError: Cannot connect to database 'default': ")
    assert "Connection refused" in line

    traced = manage("backfill_feedback_syllabus", "--traceback", database_url=url)
    assert traced.returncode == 1
    assert "Traceback (most recent call last)" in traced.stderr
    assert "psycopg.OperationalError" in traced.stderr


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize("options", [{"limit": 0}, {"batch_size": -1}, {"limit": "3"}, {"model": "survey"}])
def test_bad_options_change_nothing(world, alias, options):
    answers(world, {1: (world.fs, None)})

    with pytest.raises(CommandError, match=f"^--{next(iter(options)).replace('_', '-')} must be"):
        call_command("backfill_feedback_syllabus", database=alias, stdout=StringIO(), **options)

    assert syllabus_ids(Answer, alias) == {1: None}


@pytest.mark.parametrize("options", [{"sql": True, "check": True}, {"sql": True, "json": True}])
def test_conflicting_modes_are_refused_up_front(options):
    with pytest.raises(CommandError, match="^--sql prints the statements and nothing else; run --check or --json"):
        call_command("backfill_feedback_syllabus", stdout=StringIO(), **options)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"check": True, "dry_run": True}, "--check already writes nothing; leave out --dry-run."),
        ({"check": True, "limit": 5}, "--check counts every row and runs no chunks; leave out --limit."),
        ({"check": True, "lock_timeout": 10}, "--check counts every row and runs no chunks; leave out --lock-timeout."),
        ({"start_id": 10}, "--start-id is an id of one table; name it with --model (e.g. --model answer --start-id"),
        ({"workers": 0}, "--workers must be a whole number of at least 1, not 0."),
        ({"sleep": -1.0}, "--sleep must be a number of at least 0, not -1.0."),
        ({"sleep": float("inf")}, "--sleep must be a number of at least 0, not inf."),
        ({"max_replica_lag": float("nan")}, "--max-replica-lag must be a number of at least 0, not nan."),
        ({"lock_timeout": 99999999999999}, "--lock-timeout must be a whole number of at most 2147483647, not 99999999999999."),
        ({"batch_size": 2**63}, "--batch-size must be a whole number of at most 9223372036854775807, not 9223372036854775808."),
        ({"model": "answer", "start_id": 10**23}, "--start-id must be a whole number of at most 9223372036854775807"),
    ],
)
def test_impossible_option_sets_are_refused_up_front(options, message):
    with pytest.raises(CommandError) as raised:
        call_command("backfill_feedback_syllabus", stdout=StringIO(), **options)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize("url", ["garbage", "foo://bar", "postgres://x@localhost:notaport/x"])
def test_a_malformed_database_url_gets_one_line(url):
    result = manage("backfill_feedback_syllabus", "--check", database_url=url)

    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("DATABASE_URL is not a database URL (")
    assert line.endswith("use e.g. postgres://user@host:5432/name or sqlite:////absolute/path/db.sqlite3")


def test_an_unsupported_database_gets_one_line():
    result = manage("backfill_feedback_syllabus", database_url="mysql://root@127.0.0.1:3306/test")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "DATABASE_URL names a mysql database; the backfill runs on PostgreSQL or SQLite"
    ]
