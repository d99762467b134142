"""Turn a :class:`Backfill` into SQL for one database backend.

Every statement is built from two shared pieces, so that the preview, the
counts and the update can never disagree about which rows are eligible:

* ``sources``: the tables the value is read through, e.g.
  ``"admissions_cohort", "admissions_syllabusversion"``;
* ``predicate``: the join conditions along the relation path plus "target is
  NULL and the value is not", e.g.::

      "admissions_cohort"."id" = "feedback_answer"."cohort_id"
      AND "admissions_syllabusversion"."id" = "admissions_cohort"."syllabus_version_id"
      AND "feedback_answer"."syllabus_id" IS NULL
      AND "admissions_syllabusversion"."syllabus_id" IS NOT NULL

Identifiers are quoted by the backend; values are parameters (``%(lo)s``),
never inlined. Each table is referred to by its own name, so the same
predicate also works where UPDATE cannot take an alias.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from django.db import models

from .dialects import Dialect
from .spec import Backfill


def pyformat(name: str) -> str:
    """Placeholder style of Django's cursors: ``%(lo)s``."""
    return f"%({name})s"


@dataclass(frozen=True)
class Link:
    """One foreign key step: ``{table}.{column}`` points at ``{target}.{target_column}``."""

    table: str
    column: str
    target: str
    target_column: str


class Compiler:
    """Builds the statements of one backfill for one backend.

    ``placeholder`` renders a named parameter; the default suits Django's
    cursors, the psql scripts pass one that renders psql variables.
    """

    def __init__(self, backfill: Backfill, dialect: Dialect, *, placeholder=pyformat):
        self.backfill = backfill
        self.dialect = dialect
        self.q = dialect.quote
        self.p = placeholder
        self._tables: dict[str, str] = {}  # quoted alias -> quoted table name

    # -- names ------------------------------------------------------------

    @cached_property
    def table(self) -> str:
        """The target table, e.g. ``"feedback_answer"``."""
        return self._alias(self.backfill.model._meta.db_table)

    @cached_property
    def pk(self) -> str:
        return self.col(self.table, self.backfill.model._meta.pk)

    @cached_property
    def target(self) -> str:
        """The column being filled, qualified: ``"feedback_answer"."syllabus_id"``."""
        return self.col(self.table, self.backfill.target_field)

    @cached_property
    def links(self) -> tuple[Link, ...]:
        """The source path as foreign key steps, each joined table named once."""
        links, table = [], self.table
        *joined, last = self.backfill.source_fields
        for field in joined:
            target = self._alias(field.related_model._meta.db_table)
            links.append(Link(table, self.q(field.column), target, self.q(field.target_field.column)))
            table = target
        # The last link's column is the value itself: its table is never joined, so it takes no name.
        target = self.q(last.related_model._meta.db_table)
        links.append(Link(table, self.q(last.column), target, self.q(last.target_field.column)))
        return tuple(links)

    @cached_property
    def value(self) -> str:
        """The source value: the last link's column, e.g. ``"admissions_syllabusversion"."syllabus_id"``."""
        last = self.links[-1]
        return f"{last.table}.{last.column}"

    def col(self, table: str, field: models.Field) -> str:
        return f"{table}.{self.q(field.column)}"

    def _alias(self, table: str) -> str:
        """A quoted name for the next use of ``table``: its own name, numbered if already taken."""
        alias, n = self.q(table), 1
        while alias in self._tables:
            n += 1
            alias = self.q(f"{table}_{n}")
        self._tables[alias] = self.q(table)
        return alias

    def _table_ref(self, alias: str) -> str:
        table = self._tables[alias]
        return table if table == alias else f"{table} AS {alias}"

    # -- the shared pieces ------------------------------------------------

    @cached_property
    def sources(self) -> str:
        """The tables joined along the path (all links but the last, which is the value)."""
        return ", ".join(self._table_ref(link.target) for link in self.links[:-1])

    @cached_property
    def predicate(self) -> str:
        """What makes a row eligible; shared verbatim by every statement."""
        joins = [
            f"{link.target}.{link.target_column} = {link.table}.{link.column}" for link in self.links[:-1]
        ]
        return "\n AND ".join([*joins, f"{self.target} IS NULL", f"{self.value} IS NOT NULL"])

    def _in_range(self, upper: str) -> str:
        return f"{self.pk} > {self.p('lo')} AND {self.pk} <= {self.p(upper)}"

    @property
    def _eligible(self) -> str:
        return f"FROM {self.table}, {self.sources}\nWHERE {self.predicate}"

    # -- statements -------------------------------------------------------

    def max_id(self) -> str:
        """The highest id present; a run stops there, so it always ends::

        SELECT MAX("feedback_answer"."id") FROM "feedback_answer"
        """
        return f"SELECT MAX({self.pk}) FROM {self.table}"

    def count(self) -> str:
        """Eligible rows in ``(lo, stop]``, with the first and last id::

        SELECT COUNT(*), MIN(id), MAX(id) FROM answer, cohort, version
        WHERE <predicate> AND id > %(lo)s AND id <= %(stop)s
        """
        return (
            f"SELECT COUNT(*), MIN({self.pk}), MAX({self.pk})\n{self._eligible}\n"
            f" AND {self._in_range('stop')}"
        )

    def boundary(self) -> str:
        """The next chunk: id of the ``size``-th eligible row after ``lo``, and how many there are::

        SELECT MAX(id), COUNT(*) FROM (
            SELECT id FROM answer, cohort, version
            WHERE <predicate> AND id > %(lo)s AND id <= %(stop)s
            ORDER BY id LIMIT %(size)s) AS chunk
        """
        pk_name = self.q(self.backfill.model._meta.pk.column)
        return (
            f"SELECT MAX(chunk.{pk_name}), COUNT(*) FROM (\n"
            f"SELECT {self.pk}\n{self._eligible}\n AND {self._in_range('stop')}\n"
            f"ORDER BY {self.pk}\nLIMIT {self.p('size')}\n) AS chunk"
        )

    def update(self) -> str:
        """Fill the eligible rows of ``(lo, hi]``::

        UPDATE answer SET syllabus_id = version.syllabus_id
        FROM cohort, version
        WHERE <predicate> AND answer.id > %(lo)s AND answer.id <= %(hi)s

        Where UPDATE has no FROM (SQLite < 3.33), the same predicate is used in
        correlated subqueries instead::

        UPDATE answer SET syllabus_id = (SELECT version.syllabus_id FROM cohort, version WHERE <predicate>)
        WHERE answer.id > %(lo)s AND answer.id <= %(hi)s
          AND EXISTS (SELECT 1 FROM cohort, version WHERE <predicate>)
        """
        column = self.q(self.backfill.target_field.column)
        if self.dialect.supports_update_from:
            return (
                f"UPDATE {self.table}\nSET {column} = {self.value}\nFROM {self.sources}\n"
                f"WHERE {self.predicate}\n AND {self._in_range('hi')}"
            )
        correlated = f"FROM {self.sources}\nWHERE {self.predicate}"
        return (
            f"UPDATE {self.table}\nSET {column} = (SELECT {self.value}\n{correlated})\n"
            f"WHERE {self._in_range('hi')}\n AND EXISTS (SELECT 1\n{correlated})"
        )

    def preview(self, *, lock: bool = False) -> str:
        """The rows the update of ``(lo, hi]`` fills: id, new value and the ``show`` columns::

        SELECT answer.id, version.syllabus_id, cohort.slug, (SELECT slug FROM syllabus WHERE ...)
        FROM answer, cohort, version
        WHERE <predicate> AND answer.id > %(lo)s AND answer.id <= %(hi)s
        ORDER BY answer.id LIMIT %(size)s

        With ``lock``, the rows are locked for the rest of the chunk's
        transaction, so what is shown is exactly what the update then writes.
        """
        columns = ", ".join([self.pk, self.value, *self.shown_columns])
        locking = f"\nFOR UPDATE OF {self.table}" if lock and self.dialect.supports_select_for_update_of else ""
        return (
            f"SELECT {columns}\n{self._eligible}\n AND {self._in_range('hi')}\n"
            f"ORDER BY {self.pk}\nLIMIT {self.p('size')}{locking}"
        )

    @cached_property
    def shown_columns(self) -> tuple[str, ...]:
        return tuple(map(self._shown, self.backfill.show))

    def _shown(self, path: str) -> str:
        """An expression for a ``show`` path: a joined column, or a scalar subquery beyond the joins."""
        fields = self.backfill.resolve_shown(path)
        joined = {(link.table, link.column): link.target for link in self.links[:-1]}
        table = self.table
        while len(fields) > 1 and (table, self.q(fields[0].column)) in joined:
            table, fields = joined[table, self.q(fields[0].column)], fields[1:]
        return self._lookup(table, fields)

    def _lookup(self, table: str, fields: list[models.Field]) -> str:
        head, rest = fields[0], fields[1:]
        if not rest:
            return self.col(table, head)
        inner_table = self._alias(head.related_model._meta.db_table)
        return (
            f"(SELECT {self._lookup(inner_table, rest)} FROM {self._table_ref(inner_table)} "
            f"WHERE {inner_table}.{self.q(head.target_field.column)} = {self.col(table, head)})"
        )

    def report(self) -> str:
        """Every row of the table sorted into one category (see :meth:`categories`)::

        SELECT COUNT(*), SUM(CASE WHEN <to fill> THEN 1 ELSE 0 END), ...
        FROM answer LEFT JOIN cohort ON ... LEFT JOIN version ON ...
        """
        joins = "".join(
            f"\nLEFT JOIN {self._table_ref(link.target)} ON {link.target}.{link.target_column} = {link.table}.{link.column}"
            for link in self.links[:-1]
        )
        sums = ",\n".join(f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)" for _, condition in self.categories)
        return f"SELECT COUNT(*),\n{sums}\nFROM {self.table}{joins}"

    @cached_property
    def categories(self) -> tuple[tuple[str, str], ...]:
        """``(name, condition)`` pairs that split the table into disjoint groups.

        For answers: to fill; blocked at each link (no cohort, cohort without
        syllabus version, ...); already set to the source's value; set to another value.
        """
        empty = f"{self.target} IS NULL"
        groups = [("to fill", f"{empty} AND {self.value} IS NOT NULL")]
        reached = []
        for field, link in zip(self.backfill.source_fields, self.links):
            owner = field.model._meta.verbose_name
            groups.append(
                (
                    f"{owner} without {field.verbose_name}",
                    " AND ".join([empty, *reached, f"{link.table}.{link.column} IS NULL"]),
                )
            )
            reached.append(f"{link.table}.{link.column} IS NOT NULL")
        groups.append(("already set, same as source", f"{self.target} = {self.value}"))
        groups.append(
            (
                "already set, differs from source",
                f"{self.target} IS NOT NULL AND ({self.value} IS NULL OR {self.target} <> {self.value})",
            )
        )
        return tuple(groups)
