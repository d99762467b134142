"""Run the scripts in sql/ with the real psql client, on scratch databases of the test server."""

import contextlib
import itertools
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

SQL_DIR = Path(settings.BASE_DIR) / "sql"
PSQL = shutil.which("psql")
_names = itertools.count(1)


def server() -> dict:
    """The test PostgreSQL's DATABASES entry; skips the test when there is none, or no psql."""
    if "postgres" not in settings.DATABASES:
        pytest.skip(f"PostgreSQL tests SKIPPED: {settings.POSTGRES_SOURCE}")
    if PSQL is None:
        pytest.skip("psql tests SKIPPED: no psql client on PATH (apt-get install postgresql-client)")
    return settings.DATABASES["postgres"]


def connect(dbname: str, **kwargs) -> psycopg.Connection:
    entry = server()
    return psycopg.connect(
        host=entry["HOST"], port=entry["PORT"] or 5432, user=entry["USER"], password=entry["PASSWORD"] or None,
        dbname=dbname, **kwargs,
    )


@contextlib.contextmanager
def scratch_database(template: str | None = None):
    """A new database (an empty one, or a copy of ``template``), dropped afterwards; yields its name."""
    name = f"backfill_psql_{os.getpid()}_{next(_names)}"
    copy = f" TEMPLATE {template}" if template else ""
    with connect("postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}{copy}")
    try:
        yield name
    finally:
        with connect("postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def psql(dbname: str, script: str | Path, *, as_role: str | None = None, check: bool = True, **variables):
    """Run ``script`` (a file of sql/, or a path) unchanged: ``psql -X -A -t -f script -v name=value ...``.

    ``as_role``: run the whole session as that role (``PGOPTIONS=-c role=...``).
    Returns the CompletedProcess; raises with psql's output when it fails and ``check``.
    """
    entry = server()
    env = {
        **os.environ,
        "PGHOST": entry["HOST"],
        "PGPORT": str(entry["PORT"] or 5432),
        "PGUSER": entry["USER"],
        "PGDATABASE": dbname,
    }
    if entry["PASSWORD"]:
        env["PGPASSWORD"] = entry["PASSWORD"]
    if as_role:
        env["PGOPTIONS"] = f"-c role={as_role}"
    path = script if isinstance(script, Path) else SQL_DIR / script
    command = [PSQL, "-X", "-A", "-t", "-F", "|", "-f", str(path)]
    for name, value in variables.items():
        command += ["-v", f"{name}={value}"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{path.name} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def verify_report(output: str) -> dict[str, dict[str, int]]:
    """``{"Answer": {"total": 12, "to fill": 3, ...}, ...}`` from verify.sql's unaligned output."""
    report, model = {}, None
    for line in filter(None, output.splitlines()):
        if "|" in line:
            category, rows = line.rsplit("|", 1)
            report[model][category] = int(rows)
        else:
            model = line.strip()
            report[model] = {}
    return report


def preview_plan(output: str, models) -> dict[str, tuple[int, int, int | None, int | None]]:
    """``{"Answer": (rows, chunks, first_id, last_id)}`` from preview.sql's unaligned output."""
    plans = {}
    for line in output.splitlines():
        fields = line.split("|")
        if len(fields) == 5 and fields[0] in models:
            rows, chunks, first, last = (int(f) if f else None for f in fields[1:])
            plans[fields[0]] = (rows, chunks, first, last)
    return plans


def rows(dbname: str, table: str, columns: str = "*") -> list[tuple]:
    with connect(dbname) as connection:
        return connection.execute(f"SELECT {columns} FROM {table} ORDER BY id").fetchall()
