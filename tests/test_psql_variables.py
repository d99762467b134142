"""Bad psql variables stop the scripts with one clear line and psql's error status, before any work."""

import pytest

from .psqlrun import psql


@pytest.mark.parametrize(
    "variables, message",
    [
        ({"batch_size": 0}, 'batch_size must be a whole number of at least 1, not "0"'),
        ({"batch_size": "ten"}, 'batch_size must be a whole number of at least 1, not "ten"'),
        ({"limit": "-3"}, 'limit must be a whole number of at least 1 (or empty for no limit), not "-3"'),
        ({"model": "answers"}, 'model must be one of answer, review, all, not "answers"'),
    ],
)
@pytest.mark.parametrize("script", ["backfill.sql", "preview.sql"])
def test_bad_variables_stop_before_anything_runs(script, variables, message):
    # The maintenance database has none of the tables: any statement past the check would fail differently.
    result = psql("postgres", script, check=False, **variables)
    assert result.returncode == 3
    assert message in result.stderr
    assert "relation" not in result.stderr


@pytest.mark.parametrize(
    "variables, message",
    [
        ({"retries": "-1"}, 'retries must be a whole number of at least 0, not "-1"'),
        ({"pause": "soon"}, 'pause must be a number of seconds of at least 0, not "soon"'),
    ],
)
def test_bad_pacing_stops_the_backfill_before_anything_runs(variables, message):
    result = psql("postgres", "backfill.sql", check=False, **variables)
    assert result.returncode == 3
    assert message in result.stderr
    assert "relation" not in result.stderr


@pytest.mark.parametrize("sample, shown", [("-1", "-1"), ("abc", "abc")])
def test_a_bad_sample_stops_the_preview_before_anything_runs(sample, shown):
    result = psql("postgres", "preview.sql", check=False, sample=sample)
    assert result.returncode == 3
    assert f'sample must be a whole number of at least 0, not "{shown}"' in result.stderr
    assert "relation" not in result.stderr
