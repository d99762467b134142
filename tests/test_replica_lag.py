"""--max-replica-lag against a real streaming standby.

The test starts its own primary and standby from the local PostgreSQL server
binaries (initdb, pg_basebackup -R, pg_ctl), pauses replay on the standby, and
makes the primary write WAL until pg_stat_replication.replay_lag passes the
limit. Expected numbers are worked by hand from create_demo_data's rule (row n
can be filled unless n % 16 is 0, 4, 8 or 12; n % 16 of 8 or 12 already has a
syllabus): 20000 answers hold 1250 * 12 = 15000 rows to fill and 1250 * 2 =
2500 already set; 2000 reviews (a tenth) hold 125 * 12 = 1500 and 250.

The standby sends its status every second (wal_receiver_status_interval=1):
replay_lag on the primary only changes when a status message arrives, and with
the default of 10 s a replica that has caught up keeps showing its last lag
for up to 10 s.
"""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
AS_USER = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
LIMIT = 1.0  # --max-replica-lag, seconds


def bindir():
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if all(os.path.exists(f"{folder}/{tool}") for tool in ("initdb", "pg_ctl", "pg_basebackup")):
            return folder
    found = shutil.which("initdb")
    if found and shutil.which("pg_basebackup"):
        return os.path.dirname(found)
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port, dbname="postgres", user="postgres"):
    return psycopg.connect(host="127.0.0.1", port=port, user=user, dbname=dbname, autocommit=True, connect_timeout=5)


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


class Cluster:
    """A primary and a streaming standby in a temporary folder."""

    def __init__(self, bin_folder):
        self.bin = bin_folder
        self.root = tempfile.mkdtemp(prefix="backfill-replica-")
        if AS_USER:
            shutil.chown(self.root, "postgres")
        self.primary, self.standby = os.path.join(self.root, "primary"), os.path.join(self.root, "standby")
        self.primary_port, self.standby_port = free_port(), free_port()
        self.started = []

    def run(self, tool, *args):
        return subprocess.run(
            [*AS_USER, f"{self.bin}/{tool}", *args], check=True, capture_output=True, text=True, timeout=60
        )

    def start(self, data, port, *settings):
        options = f"-p {port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off " + " ".join(
            f"-c {s}" for s in settings
        )
        self.run("pg_ctl", "-D", data, "-w", "-t", "30", "-l", f"{data}.log", "-o", options, "start")
        self.started.append(data)

    def up(self):
        self.run("initdb", "--no-sync", "-D", self.primary, "-U", "postgres", "-A", "trust")
        self.start(self.primary, self.primary_port, "wal_level=replica", "max_wal_senders=5")
        self.run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
            "-D", self.standby, "-R", "-X", "stream", "-c", "fast",
        )
        self.start(self.standby, self.standby_port, "hot_standby=on", "wal_receiver_status_interval=1")

    def down(self):
        for data in reversed(self.started):
            subprocess.run([*AS_USER, f"{self.bin}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    folder = bindir()
    if folder is None:
        pytest.skip("replica test SKIPPED: no PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup)")
    cluster = Cluster(folder)
    try:
        try:
            cluster.up()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
            detail = getattr(error, "stderr", "") or ""
            pytest.skip(f"replica test SKIPPED: could not start a primary and a standby with {folder}: {error} {detail}")
        with connect(cluster.primary_port) as conn:
            state = wait_until(
                lambda: conn.execute("SELECT state FROM pg_stat_replication").fetchall(), 20, "the standby to connect"
            )
            assert state == [("streaming",)]
            conn.execute("CREATE DATABASE backfill")
            conn.execute("CREATE TABLE wal_maker (n int)")
        result = manage(cluster, "migrate", "-v", "0")
        assert result.returncode == 0, result.stderr
        yield cluster
    finally:
        cluster.down()


def env(cluster, user="postgres"):
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{user}@127.0.0.1:{cluster.primary_port}/backfill",
        "DJANGO_SETTINGS_MODULE": "breathecode.settings",
        "PYTHONUNBUFFERED": "1",
    }


def manage(cluster, *args, user="postgres"):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env(cluster, user), capture_output=True, text=True,
        timeout=120,
    )


def filled(port):
    """Rows with a syllabus, per table."""
    with connect(port, "backfill") as conn:
        return {
            table: conn.execute(f"SELECT count(syllabus_id) FROM {table}").fetchone()[0]
            for table in ("feedback_answer", "feedback_review")
        }


BEFORE = {"feedback_answer": 2500, "feedback_review": 250}
AFTER = {"feedback_answer": 2500 + 15000, "feedback_review": 250 + 1500}


def replay_lag(primary):
    (lag,) = primary.execute("SELECT EXTRACT(EPOCH FROM max(replay_lag)) FROM pg_stat_replication").fetchone()
    return float(lag or 0)


def make_standby_lag(cluster, primary, standby):
    """Pause replay on the standby; write WAL on the primary until replay_lag passes the limit."""
    standby.execute("SELECT pg_wal_replay_pause()")
    wait_until(
        lambda: standby.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0] == "paused", 10, "the pause"
    )
    seen = []

    def write_and_look():
        primary.execute("INSERT INTO wal_maker SELECT generate_series(1, 100)")
        seen.append(replay_lag(primary))
        return seen[-1] > LIMIT + 0.5

    # replay_lag grows while the standby does not replay (as long as it keeps reporting).
    wait_until(write_and_look, 15, f"replay_lag above {LIMIT + 0.5} s")


@pytest.fixture
def demo(cluster):
    result = manage(cluster, "create_demo_data", "--answers", "20000")
    assert result.returncode == 0, result.stderr
    assert "Created 20000 answers and 2000 reviews" in result.stdout
    # The standby has replayed the demo data before the test pauses it.
    with connect(cluster.primary_port) as primary:
        (lsn,) = primary.execute("SELECT pg_current_wal_lsn()").fetchone()
        with connect(cluster.standby_port) as standby:
            wait_until(
                lambda: standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]).fetchone()[0],
                20, "the standby to replay the demo data",
            )
    assert filled(cluster.primary_port) == BEFORE
    return cluster


def test_the_run_pauses_while_the_standby_lags_and_finishes_once_it_replays(demo):
    cluster = demo
    with connect(cluster.primary_port) as primary, connect(cluster.standby_port) as standby:
        try:
            make_standby_lag(cluster, primary, standby)
            process = subprocess.Popen(
                [sys.executable, "manage.py", "backfill_feedback_syllabus",
                 "--max-replica-lag", "1", "--batch-size", "2000", "-v", "1"],
                cwd=ROOT, env=env(cluster), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            try:
                paused = []
                for line in process.stderr:
                    if "paused: a replica replays" in line:
                        paused.append(line)
                        if len(paused) == 2:  # two polls a second apart: it is waiting, not passing by
                            break
                assert len(paused) == 2, f"no pause; the run ended with status {process.wait()}"
                assert paused[0].strip().startswith("paused: a replica replays ")
                assert paused[0].strip().endswith(" s behind (limit 1.0 s)")
                lag = float(paused[0].split("replays ")[1].split(" s behind")[0])
                assert lag > LIMIT
                assert process.poll() is None
                # Nothing was committed while the standby lagged.
                assert filled(cluster.primary_port) == BEFORE
            finally:
                standby.execute("SELECT pg_wal_replay_resume()")
            out, err = process.communicate(timeout=40)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    assert process.returncode == 0, err
    assert "Updated 15000 Answer records" in out
    assert "Updated 1500 Review records" in out
    assert "Successfully updated 16500 records in total" in out
    assert filled(cluster.primary_port) == AFTER
    # And the standby replays the result.
    wait_until(lambda: filled(cluster.standby_port) == AFTER, 20, "the standby to replay the backfill")


def test_without_a_lag_limit_a_paused_standby_does_not_hold_the_run(demo):
    cluster = demo
    with connect(cluster.primary_port) as primary, connect(cluster.standby_port) as standby:
        try:
            make_standby_lag(cluster, primary, standby)
            result = manage(cluster, "backfill_feedback_syllabus", "--batch-size", "2000", "-v", "1")
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")

    assert result.returncode == 0, result.stderr
    assert "paused" not in result.stderr
    assert filled(cluster.primary_port) == AFTER


def test_a_role_that_cannot_see_the_lag_does_not_run_unthrottled_in_silence(demo):
    cluster = demo
    with connect(cluster.primary_port, "backfill") as conn:
        conn.execute("DROP ROLE IF EXISTS lag_blind")
        conn.execute("CREATE ROLE lag_blind LOGIN")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO lag_blind")
        conn.execute("GRANT UPDATE (syllabus_id) ON feedback_answer, feedback_review TO lag_blind")
    with connect(cluster.primary_port) as primary, connect(cluster.standby_port) as standby:
        try:
            make_standby_lag(cluster, primary, standby)
            with connect(cluster.primary_port, user="lag_blind") as blind:
                # What such a role sees: the standby, without its lag.
                assert blind.execute("SELECT replay_lag FROM pg_stat_replication").fetchall() == [(None,)]
            result = manage(
                cluster, "backfill_feedback_syllabus", "--max-replica-lag", "1", "--batch-size", "2000", "-v", "1",
                user="lag_blind",
            )
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")

    # Either it waits for the standby (and says so) or it refuses: it must not ignore the limit silently.
    refused = result.returncode != 0 and ("pg_monitor" in result.stderr or "pg_read_all_stats" in result.stderr)
    assert "paused: a replica replays" in result.stderr or refused, (result.returncode, result.stderr)
