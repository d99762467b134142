"""Scratch databases for the benchmark: build a data set once, clone it for every run, check the result.

Nothing here uses Django's connections: the data sets live in databases of
their own (``backfill_bench_*`` on a PostgreSQL server, files in a temporary
folder for SQLite), filled by this project's own ``migrate`` and
``create_demo_data`` in child processes, and each strategy runs in a child
(:mod:`.strategies`) against a fresh clone.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import django
import psycopg
from django.conf import settings

from breathecode.admissions.models import Cohort, SyllabusVersion
from breathecode.feedback.models import Answer, Review

MANAGE_PY = Path(settings.BASE_DIR) / "manage.py"
PREFIX = "backfill_bench"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Strategy:
    key: str  # a, b, c, d, e, dry
    label: str
    argv: tuple[str, ...]  # arguments of python -m breathecode.feedback.benchmark.strategies
    batch_size: int | None = None

    @property
    def writes(self) -> bool:
        return self.argv[0] != "dry-run"


@dataclass
class Outcome:
    """Every run of one strategy on one data set."""

    strategy: Strategy
    answers: int  # size of the data set it ran on
    runs: list[dict] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)  # why the end state was not right, per run

    @property
    def seconds(self) -> float:
        return statistics.median(run["seconds"] for run in self.runs)

    @property
    def rows(self) -> int:
        return self.runs[0]["rows"]

    @property
    def peak_rss_mb(self) -> float:
        return max(run["peak_rss_kb"] for run in self.runs) / 1024

    @property
    def start_rss_mb(self) -> float:
        return min(run["start_rss_kb"] for run in self.runs) / 1024

    @property
    def longest_chunk(self) -> float | None:
        longest = [run["longest_chunk"] for run in self.runs if run.get("longest_chunk") is not None]
        return max(longest) if longest else None

    @property
    def median_chunk(self) -> float | None:
        medians = [run["median_chunk"] for run in self.runs if run.get("median_chunk") is not None]
        return statistics.median(medians) if medians else None


# -- scratch databases, one class per backend with the same methods ---------


class Scratch:
    """Where the benchmark's databases live on one backend."""

    vendor = ""

    def url(self, name: str) -> str:
        raise NotImplementedError

    def build(self, name: str, answers: int) -> None:
        """Create database ``name`` with the migrated schema and ``answers`` demo answers."""
        self.create_empty(name)
        env = {"DATABASE_URL": self.url(name)}
        run_child([sys.executable, str(MANAGE_PY), "migrate", "-v", "0"], env)
        run_child([sys.executable, str(MANAGE_PY), "create_demo_data", "--answers", str(answers)], env)
        self.optimize(name)

    @contextmanager
    def clone(self, template: str) -> Iterator[str]:
        """A fresh copy of ``template`` for one run; yields its name and drops it afterwards."""
        raise NotImplementedError

    def query(self, name: str, sql: str) -> tuple:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError

    def settings(self) -> str:
        """The server settings that matter most for write throughput."""
        return ""

    def close(self) -> None:
        raise NotImplementedError


class PostgreSQLScratch(Scratch):
    vendor = "postgresql"

    def __init__(self, server_url: str):
        self.server_url = server_url
        self.made: list[str] = []
        with self._admin() as connection:
            self.server_version = connection.info.server_version

    def url(self, name):
        parts = urlsplit(self.server_url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def _admin(self):
        return psycopg.connect(self.server_url, autocommit=True)

    def _execute(self, sql: str) -> None:
        with self._admin() as connection:
            connection.execute(sql)

    def create_empty(self, name):
        self.drop(name)
        self._execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)

    def optimize(self, name):
        # Hint bits, visibility map and statistics settled once, so every clone starts the same.
        with psycopg.connect(self.url(name), autocommit=True) as connection:
            connection.execute("VACUUM (FREEZE, ANALYZE)")
            connection.execute("CHECKPOINT")

    @contextmanager
    def clone(self, template):
        name = f"{PREFIX}_run"
        self.drop(name)
        # FILE_COPY (PostgreSQL 15+) copies the files instead of WAL-logging every block.
        strategy = " STRATEGY FILE_COPY" if self.server_version >= 150000 else ""
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
        try:
            yield name
        finally:
            self.drop(name)

    def drop(self, name):
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def query(self, name, sql):
        with psycopg.connect(self.url(name)) as connection:
            return connection.execute(sql).fetchone()

    def version(self):
        with self._admin() as connection:
            return "PostgreSQL " + connection.execute("SHOW server_version").fetchone()[0]

    def settings(self):
        names = ("shared_buffers", "synchronous_commit", "max_wal_size", "wal_level", "checkpoint_timeout")
        with self._admin() as connection:
            values = [f"{n}={connection.execute(f'SHOW {n}').fetchone()[0]}" for n in names]
        return ", ".join(values)

    def close(self):
        for name in self.made:
            self.drop(name)


class SQLiteScratch(Scratch):
    vendor = "sqlite"

    def __init__(self, folder: str | None = None):
        self.folder = Path(folder or tempfile.mkdtemp(prefix=f"{PREFIX}_"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.owned = folder is None

    def path(self, name):
        return self.folder / f"{name}.sqlite3"

    def url(self, name):
        return f"sqlite:///{self.path(name)}"

    def create_empty(self, name):
        self._remove(name)

    def optimize(self, name):
        with sqlite3.connect(self.path(name)) as connection:
            connection.execute("ANALYZE")
        connection.close()
        with sqlite3.connect(self.path(name), isolation_level=None) as connection:
            connection.execute("VACUUM")
            # Fold the write-ahead log into the file, so that copying the file copies everything.
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()

    @contextmanager
    def clone(self, template):
        name = f"{PREFIX}_run"
        self._remove(name)
        shutil.copyfile(self.path(template), self.path(name))
        # Flush the copy now, or the first commit of the run would pay for writing it out.
        with open(self.path(name), "rb+") as copy:
            os.fsync(copy.fileno())
        try:
            yield name
        finally:
            self._remove(name)

    def _remove(self, name):
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{self.path(name)}{suffix}").unlink(missing_ok=True)

    def query(self, name, sql):
        connection = sqlite3.connect(self.path(name))
        try:
            return connection.execute(sql).fetchone()
        finally:
            connection.close()

    def version(self):
        return f"SQLite {sqlite3.sqlite_version}"

    def settings(self):
        return "journal_mode=WAL (breathecode/settings.py sets it on every SQLite database), synchronous=FULL"

    def close(self):
        if self.owned:
            shutil.rmtree(self.folder, ignore_errors=True)


def run_child(argv: list[str], env: dict[str, str]) -> str:
    """Run a child process with this project's settings and ``env``; its stdout, or an error with its stderr."""
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "breathecode.settings", **env}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(MANAGE_PY.parent), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(argv, env=full_env, cwd=MANAGE_PY.parent, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv[1:])} failed ({done.returncode}):\n{done.stderr.strip()}")
    return done.stdout


def run_strategy(scratch: Scratch, name: str, strategy: Strategy) -> dict:
    argv = [sys.executable, "-m", "breathecode.feedback.benchmark.strategies", *strategy.argv]
    out = run_child(argv, {"DATABASE_URL": scratch.url(name)})
    return json.loads(out.strip().splitlines()[-1])


# -- the end state, computed independently of every strategy ----------------


def _q(name: str) -> str:
    # Double quotes are the standard SQL quoting, valid on PostgreSQL and SQLite alike.
    return f'"{name}"'


def fingerprint_sql(model, *, expected: bool) -> str:
    """A fingerprint of every ``(id, syllabus_id)`` pair of ``model``'s table, in one row.

    With ``expected``, the pairs are the ones a correct backfill leaves, written
    out with plain LEFT JOINs: ``COALESCE(syllabus_id, the cohort's version's
    syllabus_id)``; without, the pairs as they are. Count, filled count and
    three weighted sums: two tables agree on them only if (practically) every
    row agrees.
    """
    table, cohort, version = (_q(m._meta.db_table) for m in (model, Cohort, SyllabusVersion))
    pk = _q(model._meta.pk.column)
    target = f"t.{_q(model._meta.get_field('syllabus').column)}"
    source = f"v.{_q(SyllabusVersion._meta.get_field('syllabus').column)}"
    value = f"COALESCE({target}, {source})" if expected else target
    return (
        "SELECT COUNT(*), COUNT(x), COALESCE(SUM(x), 0), COALESCE(SUM(CAST(id AS BIGINT) * x), 0),"
        " COALESCE(SUM((id % 1009) * x * x), 0), "
        f" COALESCE(SUM(CASE WHEN fill THEN 1 ELSE 0 END), 0)\n"
        f"FROM (SELECT t.{pk} AS id, {value} AS x, ({target} IS NULL AND {source} IS NOT NULL) AS fill\n"
        f"      FROM {table} AS t\n"
        f"      LEFT JOIN {cohort} AS c ON c.{_q(Cohort._meta.pk.column)} = t.{_q(model._meta.get_field('cohort').column)}\n"
        f"      LEFT JOIN {version} AS v ON v.{_q(SyllabusVersion._meta.pk.column)} = "
        f"c.{_q(Cohort._meta.get_field('syllabus_version').column)}) AS pairs"
    )


@dataclass(frozen=True)
class DataSet:
    """A template database and what every strategy must leave in its clones."""

    name: str
    answers: int
    before: dict[str, tuple]  # model -> fingerprint as built
    after: dict[str, tuple]  # model -> fingerprint a correct backfill leaves

    @property
    def fillable(self) -> int:
        return sum(fp[5] for fp in self.before.values())


MODELS = {"answer": Answer, "review": Review}


def _fingerprint(scratch: Scratch, name: str, model, *, expected: bool) -> tuple:
    return tuple(int(v) for v in scratch.query(name, fingerprint_sql(model, expected=expected)))


def build_data_set(scratch: Scratch, answers: int) -> DataSet:
    name = f"{PREFIX}_{answers}"
    scratch.build(name, answers)
    before = {key: _fingerprint(scratch, name, m, expected=False) for key, m in MODELS.items()}
    after = {key: _fingerprint(scratch, name, m, expected=True) for key, m in MODELS.items()}
    return DataSet(name, answers, before, after)


def check(scratch: Scratch, name: str, data: DataSet, strategy: Strategy, reported_rows: int) -> str:
    """Why the clone ``name`` is not in the state ``strategy`` must leave, or ``""`` if it is."""
    want = data.after if strategy.writes else data.before
    problems = []
    for key, model in MODELS.items():
        got = _fingerprint(scratch, name, model, expected=False)
        if got[:5] != want[key][:5]:
            problems.append(f"{key}s differ from the expected end state")
    if reported_rows != data.fillable:
        problems.append(f"reported {reported_rows} rows, {data.fillable} were fillable")
    return "; ".join(problems)


def measure(scratch: Scratch, data: DataSet, strategy: Strategy, *, repeat: int, long_run: float = 60.0) -> Outcome:
    """Run ``strategy`` up to ``repeat`` times, each on a fresh clone; stop early after a run of over ``long_run`` s."""
    outcome = Outcome(strategy, data.answers)
    for _ in range(repeat):
        with scratch.clone(data.name) as name:
            result = run_strategy(scratch, name, strategy)
            problem = check(scratch, name, data, strategy, result["rows"])
        outcome.runs.append(result)
        if problem:
            outcome.wrong.append(problem)
        if result["seconds"] > long_run:
            break
    return outcome


# -- the machine ----------------------------------------------------------------


def machine_facts() -> list[str]:
    facts = [f"cores: {os.cpu_count()}"]
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kb = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        facts.append(f"memory: {total_kb / 1024 / 1024:.1f} GiB")
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), None)
        if model:
            facts.append(f"cpu: {model}")
    facts.append(f"Python {platform.python_version()}, Django {django.get_version()}, {platform.system()} {platform.release()}")
    return facts
