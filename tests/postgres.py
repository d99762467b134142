"""Find a PostgreSQL server for the test suite, or start a throwaway one.

In order: ``TEST_POSTGRES_URL``; a server on 127.0.0.1:5432 as user
``postgres`` (trust auth, as on the CI machines); a temporary cluster made with
the local PostgreSQL binaries (``initdb``/``pg_ctl``), removed at exit.
"""

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile

import dj_database_url
import psycopg

LOCAL_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def find_postgres() -> tuple[dict | None, str]:
    """A Django DATABASES entry for PostgreSQL (or None), and a sentence saying where it came from."""
    url = os.environ.get("TEST_POSTGRES_URL")
    if url:
        return dj_database_url.parse(url), f"PostgreSQL from TEST_POSTGRES_URL ({_safe(url)})"
    if _reachable(LOCAL_URL):
        return dj_database_url.parse(LOCAL_URL), f"PostgreSQL at {LOCAL_URL}"
    url, why = _start_throwaway()
    if url:
        return dj_database_url.parse(url), f"throwaway PostgreSQL started at {url}"
    return None, why


def _safe(url: str) -> str:
    parsed = dj_database_url.parse(url)
    return f"{parsed['HOST']}:{parsed['PORT']}/{parsed['NAME']}"


def _reachable(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


def _start_throwaway() -> tuple[str | None, str]:
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    initdb = shutil.which("initdb") or next((f"{d}/initdb" for d in reversed(bindirs)), None)
    if not initdb or not os.path.exists(initdb):
        return None, "no PostgreSQL found: set TEST_POSTGRES_URL or install PostgreSQL's server binaries"
    bindir = os.path.dirname(initdb)
    folder = tempfile.mkdtemp(prefix="backfill-pg-")
    # initdb refuses to run as root; run the cluster as the postgres system user then.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "postgres")
    port = _free_port()
    data = os.path.join(folder, "data")
    try:
        subprocess.run([*as_user, initdb, "-D", data, "-U", "postgres", "-A", "trust"], check=True, capture_output=True)
        subprocess.run(
            [*as_user, f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(folder, "log"),
             "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
            check=True, capture_output=True,
        )
    except (subprocess.CalledProcessError, OSError) as error:
        shutil.rmtree(folder, ignore_errors=True)
        return None, f"could not start a throwaway PostgreSQL with {bindir}: {error}"

    def stop():
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)

    atexit.register(stop)
    return f"postgres://postgres@127.0.0.1:{port}/postgres", ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
