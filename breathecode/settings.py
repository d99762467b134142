"""Settings for running the backfill against the database named by DATABASE_URL.

With DATABASE_URL unset, an SQLite file in the project folder is the database.
"""

import os
import sys
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "not-a-secret: this project serves no requests"
DEBUG = False
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "breathecode.admissions",
    "breathecode.feedback",
]

DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
except ValueError as error:  # an unknown scheme or a malformed URL
    # Settings are read before any command runs: say what is wrong in one line and stop.
    sys.exit(
        f"DATABASE_URL is not a database URL ({str(error).split('. ')[0]}); use e.g. "
        "postgres://user@host:5432/name or sqlite:////absolute/path/db.sqlite3"
    )
ENGINE = DATABASES["default"]["ENGINE"]
if ENGINE not in {"django.db.backends.postgresql", "django.db.backends.sqlite3"}:
    sys.exit(f"DATABASE_URL names a {ENGINE.rsplit('.', 1)[-1]} database; the backfill runs on PostgreSQL or SQLite")
if ENGINE == "django.db.backends.sqlite3":
    # Write-ahead logging: readers do not block the writer nor it them, and a commit costs
    # one append instead of a rollback-journal round; the setting stays with the file.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("init_command", "PRAGMA journal_mode=WAL")

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
