"""SQL as people read it: formatted statements, and the list of statements a run executes.

Nothing here connects to a database: ``--sql`` and the ``sql/`` generator only
need the backend's quoting, which a :class:`PostgreSQLDialect` can get from
Django's operations class alone.
"""

from __future__ import annotations

from types import SimpleNamespace

import sqlparse

from .dialects import PostgreSQLDialect
from .runner import Runner


def format_sql(sql: str) -> str:
    """One statement, reindented for reading; only whitespace changes::

    >>> print(format_sql('SELECT MAX("t"."id") FROM "t"'))
    SELECT MAX("t"."id")
    FROM "t"
    """
    return sqlparse.format(sql, reindent=True).strip()


def offline_postgresql() -> PostgreSQLDialect:
    """A PostgreSQL dialect that quotes like Django's backend, without settings or a server."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    return PostgreSQLDialect(SimpleNamespace(vendor="postgresql", ops=DatabaseOperations(None)))


def run_statements(runner: Runner) -> list[tuple[str, str]]:
    """``(comment, sql)`` for every kind of statement ``runner`` executes, in the order it does.

    Placeholders stay as the runner binds them (``%(lo)s``), so this is the
    exact text sent to the server; a dry run never reaches the UPDATE.
    """
    compiler, name = runner.compiler, runner.compiler.backfill.name
    statements = [
        (f"{name}: the highest id at the start; the run stops there", compiler.max_id()),
        (f"{name}: eligible rows in (%(lo)s, %(stop)s], with the first and last id", compiler.count()),
    ]
    if runner.dry_run:
        if runner.limit is not None:
            statements.append((f"{name}: the last id within --limit (%(size)s rows)", runner.boundary_sql))
        statements.append((f"{name}: the first %(size)s records the run would fill", compiler.preview()))
        return statements
    statements.append(
        (f"{name}: each chunk ends at the id of the %(size)s-th eligible row after %(lo)s", runner.boundary_sql)
    )
    setup = runner.dialect.chunk_setup(
        lock_timeout_ms=runner.lock_timeout_ms, statement_timeout_ms=runner.statement_timeout_ms
    )
    statements += [(f"{name}: each chunk is one transaction; it starts with", sql) for sql in setup]
    if runner.sample != 0:
        statements.append((f"{name}: records to show, read in the chunk's transaction", runner.preview_sql))
    statements.append((f"{name}: fill the chunk (%(lo)s, %(hi)s], then commit", runner.update_sql))
    return statements
