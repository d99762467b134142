"""`backfill_feedback_syllabus --sql`: the statements a run would execute, printed, nothing run."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections

from breathecode.feedback.backfills import SYLLABUS_BACKFILLS
from breathecode.feedback.models import Answer
from breathecode.utils.backfill import Compiler, dialect_for
from breathecode.utils.backfill.render import format_sql

from .factories import answers, syllabus_ids

pytestmark = pytest.mark.django_db(databases="__all__")


def sql_of(alias, *args):
    out = StringIO()
    call_command("backfill_feedback_syllabus", "--sql", *args, database=alias, stdout=out)
    return out.getvalue()


def compiled(alias, model):
    return Compiler(SYLLABUS_BACKFILLS[model], dialect_for(connections[alias]))


def test_prints_the_runs_statements_under_comments(alias):
    output = sql_of(alias)
    for model in SYLLABUS_BACKFILLS:
        compiler = compiled(alias, model)
        for sql in (compiler.max_id(), compiler.count(), compiler.boundary(), compiler.update()):
            assert f"\n{format_sql(sql)};\n" in output
    blocks = [block for block in output.split("\n\n") if block.strip()]
    assert all(block.startswith("-- ") for block in blocks)
    assert "\x1b[" not in output  # uncoloured, fit to pipe


def test_dry_run_prints_the_preview_and_no_update(alias):
    output = sql_of(alias, "--dry-run", "--model", "review")
    assert format_sql(compiled(alias, "review").preview()) in output
    assert "UPDATE" not in output
    assert "feedback_answer" not in output


def test_each_chunk_starts_with_the_backends_lock_wait(alias):
    output = sql_of(alias, "--model", "answer", "--lock-timeout", "1500", "--statement-timeout", "9000")
    expected = {
        "postgresql": ["SET LOCAL lock_timeout = 1500;", "SET LOCAL statement_timeout = 9000;"],
        "sqlite": ["PRAGMA busy_timeout = 1500;"],
    }[connections[alias].vendor]
    assert [line for line in output.splitlines() if line.startswith(("SET LOCAL", "PRAGMA"))] == expected


def test_touches_nothing(alias, world, django_assert_num_queries):
    answers(world, {1: (world.fs, None), 2: (world.ds, None)})
    with django_assert_num_queries(0, connection=connections[alias]):
        sql_of(alias, "--limit", "1", "--batch-size", "1")
    assert syllabus_ids(Answer, alias) == {1: None, 2: None}
