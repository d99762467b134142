"""Settings for running the backfill against the database named by DATABASE_URL.

With DATABASE_URL unset, an SQLite file in the project folder is the database.
"""

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

DATABASES = {
    "default": dj_database_url.config(default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Write-ahead logging: readers do not block the writer nor it them, and a commit costs
    # one append instead of a rollback-journal round; the setting stays with the file.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("init_command", "PRAGMA journal_mode=WAL")

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
