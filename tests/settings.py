"""Test settings: SQLite as "default" and, when one can be found, PostgreSQL as "postgres".

Every behaviour test runs once per alias. Without PostgreSQL its tests are
skipped with a loud notice; under CI=true that is an error instead.
"""

import os

from breathecode.settings import *  # noqa: F403

from .postgres import find_postgres

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

POSTGRES, POSTGRES_SOURCE = find_postgres()
if POSTGRES:
    # One test database per run, so two runs against one server do not collide.
    DATABASES["postgres"] = {**POSTGRES, "TEST": {"NAME": f"test_backfill_{os.getpid()}"}}
elif os.environ.get("CI") == "true":
    raise RuntimeError(f"CI=true but PostgreSQL is not available: {POSTGRES_SOURCE}")

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
