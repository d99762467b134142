import pytest
from django.conf import settings

from .factories import make_world

# Test id -> database alias (see tests/settings.py).
BACKENDS = {"sqlite": "default", "postgresql": "postgres"}
POSTGRES_MISSING = f"PostgreSQL tests SKIPPED: {settings.POSTGRES_SOURCE}"


def pytest_report_header(config):
    return [f"databases: SQLite in memory; {settings.POSTGRES_SOURCE if settings.POSTGRES else POSTGRES_MISSING}"]


def pytest_terminal_summary(terminalreporter):
    if not settings.POSTGRES:
        terminalreporter.write_sep("!", POSTGRES_MISSING, red=True, bold=True)


def _require(alias):
    if alias not in settings.DATABASES:
        pytest.skip(POSTGRES_MISSING)
    return alias


@pytest.fixture(params=list(BACKENDS))
def alias(request):
    """A database alias, once per backend; the test needs a django_db mark with databases="__all__"."""
    return _require(BACKENDS[request.param])


@pytest.fixture
def pg_alias():
    """The PostgreSQL alias, for what only PostgreSQL can show (row locks, a second session)."""
    return _require("postgres")


@pytest.fixture
def world(alias):
    """Syllabi, versions and cohorts covering every case, on ``alias``.

    cohorts: ``fs`` -> full-stack, ``ds`` -> data-science, ``nameless`` -> a
    syllabus whose slug is NULL, ``bare`` -> no syllabus version.
    """
    return make_world(alias)
