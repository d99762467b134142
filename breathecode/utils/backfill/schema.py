"""Checks that the database is ready for a backfill, with the fix in every message."""

from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import AddField, CreateModel

from .spec import Backfill


class NotReady(Exception):
    """The database cannot run this backfill yet; the message says how to fix it."""


def check_schema(backfill: Backfill, alias: str) -> None:
    """Raise :class:`NotReady` unless every table and column the backfill touches exists."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
        for field in backfill.path_fields:
            table = field.model._meta.db_table
            if table not in tables:
                raise NotReady(
                    f"Table {table} does not exist in database '{alias}'. "
                    f"Apply the migrations first: python manage.py migrate --database {alias}"
                )
            columns = {c.name for c in connection.introspection.get_table_description(cursor, table)}
            if field.column not in columns:
                migration = migration_adding(field)
                raise NotReady(
                    f"Column {table}.{field.column} does not exist in database '{alias}'. "
                    f"Apply the migration that adds it first: python manage.py migrate "
                    f"{migration.replace('.', ' ')} --database {alias}"
                )


def migration_adding(field) -> str:
    """``app_label.migration_name`` of the migration that creates ``field``, e.g. ``feedback.0002_add_syllabus``."""
    opts = field.model._meta
    loader = MigrationLoader(None, ignore_no_migrations=True)
    for (app_label, name), migration in sorted(loader.disk_migrations.items()):
        if app_label != opts.app_label:
            continue
        for operation in migration.operations:
            if (
                isinstance(operation, AddField)
                and operation.model_name_lower == opts.model_name
                and operation.name_lower == field.name.lower()
            ) or (
                isinstance(operation, CreateModel)
                and operation.name_lower == opts.model_name
                and any(name_ == field.name for name_, _ in operation.fields)
            ):
                return f"{app_label}.{name}"
    return opts.app_label
