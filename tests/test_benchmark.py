"""The benchmark runs end to end at a tiny size and finds every strategy's end state right.

No timings are asserted: they belong to the benchmark's report, not to the suite.
"""

from io import StringIO

from django.core.management import call_command

STRATEGIES = ["(a)", "(b)", "(c)", "(d)", "(e)", "dry run"]


def test_quick_run_reports_every_strategy_correct():
    out = StringIO()
    call_command("benchmark_backfill", quick=True, backend=["sqlite"], stdout=out, stderr=StringIO())
    rows = [line for line in out.getvalue().splitlines() if line.startswith("| (") or line.startswith("| dry")]
    assert [next(s for s in STRATEGIES if row[2:].startswith(s)) for row in rows] == STRATEGIES
    assert all(row.rstrip(" |").endswith("OK") for row in rows), out.getvalue()
    assert "1,650 rows to fill" in out.getvalue()
