"""The psql scripts on the real upstream breathecode schema and data (tests/data/upstream/).

The dump is restored once into a scratch database; every test works on its own
copy. Expected numbers come from the dump's rows and from the upstream
command's result (expected_after_backfill.csv), never from the code under test.
"""

import csv
import signal
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from .psqlrun import PSQL, SQL_DIR, connect, psql, rows, scratch_database, server, verify_report

UPSTREAM = Path(__file__).parent / "data" / "upstream"
MODELS = {"feedback_answer": "Answer", "feedback_review": "Review"}


@pytest.fixture(scope="module")
def pristine():
    """A database restored from the upstream dump, never modified; yields its name."""
    with scratch_database() as name:
        psql(name, UPSTREAM / "breathecode_feedback_subset.sql", ON_ERROR_STOP=1)
        yield name


@pytest.fixture
def upstream(pristine):
    with scratch_database(template=pristine) as name:
        yield name


def expected_after() -> dict[str, list[tuple]]:
    result = {table: [] for table in MODELS}
    with open(UPSTREAM / "expected_after_backfill.csv", newline="") as file:
        for row in csv.DictReader(file):
            result[row["table"]].append((int(row["id"]), int(row["syllabus_id"]) if row["syllabus_id"] else None))
    return {table: sorted(pairs) for table, pairs in result.items()}


def pairs(dbname):
    return {table: rows(dbname, table, "id, syllabus_id") for table in MODELS}


def categories(dbname) -> dict[str, Counter]:
    """Each row sorted into a group in Python, from the raw rows and the cohort -> version -> syllabus chain."""
    version_of = dict(rows(dbname, "admissions_cohort", "id, syllabus_version_id"))
    syllabus_of = dict(rows(dbname, "admissions_syllabusversion", "id, syllabus_id"))
    result = {}
    for table, model in MODELS.items():
        counts = Counter()
        for _, cohort, current in rows(dbname, table, "id, cohort_id, syllabus_id"):
            version = version_of[cohort] if cohort is not None else None
            source = syllabus_of[version] if version is not None else None
            if current is not None:
                counts["same" if current == source else "differs"] += 1
            elif cohort is None:
                counts["no cohort"] += 1
            elif version is None:
                counts["no version"] += 1
            elif source is None:
                counts["no syllabus"] += 1
            else:
                counts["to fill"] += 1
        counts["total"] = sum(counts.values())
        result[model] = counts
    return result


def as_report(counts: dict[str, Counter]) -> dict[str, dict[str, int]]:
    """Python's groups with verify.sql's labels."""
    return {
        model: {
            "total": c["total"],
            "to fill": c["to fill"],
            f"{model.lower()} without cohort": c["no cohort"],
            "cohort without syllabus version": c["no version"],
            "syllabus version without syllabus": c["no syllabus"],
            "already set, same as source": c["same"],
            "already set, differs from source": c["differs"],
        }
        for model, c in counts.items()
    }


def test_backfill_reproduces_the_upstream_result(upstream):
    before = pairs(upstream)
    run = psql(upstream, "backfill.sql", batch_size=700)
    assert pairs(upstream) == expected_after()
    changed = {t: sum(a != b for a, b in zip(before[t], expected_after()[t])) for t in MODELS}
    assert changed == {"feedback_answer": 2501, "feedback_review": 251}
    assert "Updated 2501 Answer records in 4 chunk(s)" in run.stderr
    assert "Updated 251 Review records in 1 chunk(s)" in run.stderr
    psql(upstream, "backfill.sql")
    assert pairs(upstream) == expected_after()


def test_verify_numbers_match_the_data(upstream):
    before = categories(upstream)
    assert before["Answer"]["to fill"] == 2501 and before["Review"]["to fill"] == 251
    assert min(before["Answer"][group] for group in ("no cohort", "no version", "same", "differs")) > 0
    assert verify_report(psql(upstream, "verify.sql").stdout) == as_report(before)

    psql(upstream, "backfill.sql")
    after = categories(upstream)
    for model in MODELS.values():
        assert after[model]["to fill"] == 0
        assert after[model]["same"] == before[model]["same"] + before[model]["to fill"]
    assert verify_report(psql(upstream, "verify.sql").stdout) == as_report(after)


def test_preview_on_upstream(upstream):
    output = psql(upstream, "preview.sql", batch_size=1000).stdout
    assert "Answer|2501|3|1|5000" in output.splitlines()
    assert "Review|251|1|1|500" in output.splitlines()


@pytest.fixture
def role(upstream):
    """A fresh least-privilege role made by sql/grant_backfill_role.sql; dropped afterwards."""
    name = f"backfill_test_{uuid.uuid4().hex[:8]}"
    try:
        psql(upstream, "grant_backfill_role.sql", role=name)
        psql(upstream, "grant_backfill_role.sql", role=name)  # a second run is harmless
        yield name
    finally:
        with connect(upstream, autocommit=True) as admin:
            admin.execute(f'DROP OWNED BY "{name}"')
            admin.execute(f'DROP ROLE IF EXISTS "{name}"')


def test_least_privilege_role_can_backfill(upstream, role):
    assert verify_report(psql(upstream, "verify.sql", as_role=role).stdout) == as_report(categories(upstream))
    psql(upstream, "preview.sql", as_role=role)
    psql(upstream, "backfill.sql", as_role=role, batch_size=1000)
    assert pairs(upstream) == expected_after()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE feedback_answer SET title = 'x' WHERE id = 1",
        "UPDATE feedback_answer SET updated_at = now() WHERE id = 1",
        "UPDATE feedback_review SET cohort_id = NULL WHERE id = 1",
        "UPDATE admissions_cohort SET syllabus_version_id = NULL WHERE id = 1",
        "UPDATE admissions_syllabus SET slug = 'x' WHERE id = 1",
        "DELETE FROM feedback_answer WHERE id = 1",
        "INSERT INTO feedback_review (id) VALUES (100000)",
        "TRUNCATE feedback_review",
    ],
)
def test_least_privilege_role_can_do_nothing_else(upstream, role, statement):
    with connect(upstream, options=f"-c role={role}") as connection:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            connection.execute(statement)


def test_ctrl_c_between_chunks_loses_nothing(upstream):
    """SIGINT (what Ctrl-C sends) in the pause after chunk 1: chunk 1 stays committed, a rerun finishes."""
    before = pairs(upstream)
    entry = server()
    env = {"PGHOST": entry["HOST"], "PGPORT": str(entry["PORT"] or 5432), "PGUSER": entry["USER"]}
    command = [PSQL, "-X", "-d", upstream, "-f", str(SQL_DIR / "backfill.sql"), "-v", "batch_size=500", "-v", "pause=20"]
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) as run:
        for line in run.stderr:
            if "Answer chunk 1:" in line:
                run.send_signal(signal.SIGINT)
                break
        run.wait(timeout=30)
    assert run.returncode != 0
    after = pairs(upstream)
    assert sum(a != b for a, b in zip(before["feedback_answer"], after["feedback_answer"])) == 500
    assert after["feedback_review"] == before["feedback_review"]
    psql(upstream, "backfill.sql")
    assert pairs(upstream) == expected_after()
