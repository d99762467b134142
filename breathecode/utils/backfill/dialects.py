"""Everything that differs between database backends, and nothing else.

One class per vendor with the same methods, in the manner of
``django/db/backends/*/features.py``: flags that depend on a server version are
phrased as questions, and the rest of the engine asks them instead of testing
the vendor.
"""

from __future__ import annotations

import sqlite3
from enum import Enum

from django.db import DatabaseError, IntegrityError, DataError


class Failure(Enum):
    """How a failed chunk statement should be handled."""

    TRANSIENT = "transient"  # a lock or time-out: wait and try the same rows again
    ROW = "row"  # a row was rejected (constraint, trigger): narrow it down, keep the rest
    FATAL = "fatal"  # the connection, permissions or schema: stop the run


class Dialect:
    vendor = ""
    # Rows per chunk when none is given: about 0.1-0.2 s a chunk on a 2-core machine (see README).
    default_batch_size = 10_000
    # Does UPDATE accept "FROM other_table, ..." (PostgreSQL; SQLite >= 3.33)?
    supports_update_from = True
    # Can a SELECT lock only the target table's rows ("FOR UPDATE OF t")?
    supports_select_for_update_of = False
    # Can several connections write to one table at once (not SQLite: it has one writer)?
    supports_parallel_writers = False
    # How far behind, in seconds, the slowest replica replays (None: no replicas to ask).
    replica_lag_sql: str | None = None
    # How many replicas this role cannot see the lag of (None: no replicas to ask).
    hidden_replicas_sql: str | None = None
    # Is this session unable to write (a standby, default_transaction_read_only)? None: cannot tell.
    read_only_sql: str | None = None

    def __init__(self, connection):
        self.connection = connection

    def quote(self, name: str) -> str:
        return self.connection.ops.quote_name(name)

    def chunk_setup(self, *, lock_timeout_ms: int, statement_timeout_ms: int) -> list[str]:
        """Statements run at the start of every chunk's transaction."""
        return []

    def classify(self, error: DatabaseError) -> Failure:
        if isinstance(error, (IntegrityError, DataError)):
            return Failure.ROW
        return Failure.FATAL


class PostgreSQLDialect(Dialect):
    vendor = "postgresql"
    supports_parallel_writers = True
    supports_select_for_update_of = True

    # SQLSTATEs worth retrying: lock_not_available, deadlock_detected,
    # serialization_failure, and query_canceled when a statement timeout (not a
    # person, with pg_cancel_backend) cancelled it.
    TRANSIENT_STATES = {"55P03", "40P01", "40001"}
    QUERY_CANCELED = "57014"
    # Classes that mean "this row was refused": data exception, integrity
    # violation, and RAISE EXCEPTION from a PL/pgSQL trigger; but a bad setting
    # (invalid_parameter_value, from the chunk's SET LOCAL) refuses every row alike.
    ROW_STATE_CLASSES = {"22", "23"}
    ROW_STATES = {"P0001"}
    SETTING_REFUSED = "22023"

    read_only_sql = "SELECT current_setting('transaction_read_only') = 'on'"
    # replay_lag grows while a standby does not replay, but only as often as the standby
    # reports (wal_receiver_status_interval); a standby that has replayed everything is
    # caught up whatever stale lag it last reported.
    replica_lag_sql = (
        "SELECT COALESCE(MAX(CASE WHEN replay_lsn >= pg_current_wal_lsn() THEN 0 "
        "ELSE EXTRACT(EPOCH FROM replay_lag) END), 0) FROM pg_stat_replication"
    )
    # Without pg_monitor/pg_read_all_stats a role sees the standbys but not their state or lag.
    hidden_replicas_sql = "SELECT COUNT(*) FROM pg_stat_replication WHERE state IS NULL"

    def chunk_setup(self, *, lock_timeout_ms, statement_timeout_ms):
        # SET LOCAL ends with the chunk's transaction; values are integers we checked.
        return [
            f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}",
            f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}",
        ]

    def classify(self, error):
        state = getattr(error.__cause__, "sqlstate", None) or ""
        if state in self.TRANSIENT_STATES or (state == self.QUERY_CANCELED and "statement timeout" in str(error)):
            return Failure.TRANSIENT
        if state != self.SETTING_REFUSED and (state in self.ROW_STATES or state[:2] in self.ROW_STATE_CLASSES):
            return Failure.ROW
        return Failure.FATAL


class SQLiteDialect(Dialect):
    vendor = "sqlite"
    # SQLite updates about five times faster; smaller chunks would mostly add commits.
    default_batch_size = 50_000
    # SQLite's read-only switch; a read-only file only shows when written to.
    read_only_sql = "PRAGMA query_only"

    def chunk_setup(self, *, lock_timeout_ms, statement_timeout_ms):
        # SQLite's lock wait is the busy timeout; it has no statement time-out.
        return [f"PRAGMA busy_timeout = {int(lock_timeout_ms)}"]

    def __init__(self, connection, *, sqlite_version: tuple[int, ...] | None = None):
        super().__init__(connection)
        version = sqlite_version or sqlite3.sqlite_version_info
        # UPDATE ... FROM arrived in SQLite 3.33.0 (2020-08-14).
        self.supports_update_from = version >= (3, 33, 0)

    def classify(self, error):
        # Another writer holds the database lock past the busy timeout.
        if "database is locked" in str(error) or "database table is locked" in str(error):
            return Failure.TRANSIENT
        return super().classify(error)


DIALECTS = {d.vendor: d for d in (PostgreSQLDialect, SQLiteDialect)}


def dialect_for(connection) -> Dialect:
    try:
        return DIALECTS[connection.vendor](connection)
    except KeyError:
        raise NotImplementedError(
            f"The backfill supports {', '.join(sorted(DIALECTS))}, not {connection.vendor}."
        ) from None
