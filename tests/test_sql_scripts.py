"""sql/ is generated: regenerating it must change nothing (like `makemigrations --check`)."""

import filecmp

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from breathecode.feedback.backfills import SYLLABUS_BACKFILLS
from breathecode.utils.backfill import Compiler
from breathecode.utils.backfill.psql import POSITIONAL
from breathecode.utils.backfill.render import format_sql, offline_postgresql

SQL_DIR = settings.BASE_DIR / "sql"


def test_sql_folder_is_up_to_date(tmp_path):
    call_command("generate_backfill_sql", output=tmp_path, verbosity=0)
    generated = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in SQL_DIR.glob("*.sql"))
    assert generated == committed, "run: python manage.py generate_backfill_sql"
    match, mismatch, errors = filecmp.cmpfiles(tmp_path, SQL_DIR, generated, shallow=False)
    assert mismatch == errors == [], f"{mismatch} out of date; run: python manage.py generate_backfill_sql"


def test_generating_needs_no_database(tmp_path):
    # No django_db mark: pytest-django fails any query.
    call_command("generate_backfill_sql", output=tmp_path, verbosity=0)
    assert (tmp_path / "backfill.sql").read_text().startswith("-- Backfill ")


def test_check_reports_stale_files(tmp_path):
    call_command("generate_backfill_sql", output=tmp_path, verbosity=0)
    call_command("generate_backfill_sql", output=tmp_path, check=True)
    (tmp_path / "verify.sql").write_text("-- edited by hand\n")
    with pytest.raises(CommandError, match="verify.sql"):
        call_command("generate_backfill_sql", output=tmp_path, check=True)


def test_every_statement_comes_from_the_compiler():
    """The UPDATE in backfill.sql is the compiler's, with $n for its parameters."""
    script = " ".join((SQL_DIR / "backfill.sql").read_text().split())
    for backfill in SYLLABUS_BACKFILLS.values():
        compiler = Compiler(backfill, offline_postgresql(), placeholder=POSITIONAL.__getitem__)
        for sql in (compiler.max_id(), compiler.boundary(), compiler.update()):
            assert " ".join(format_sql(sql).split()) in script
