"""Measure backfill_feedback_syllabus against the per-row loop, QuerySet.update() and one raw UPDATE."""

import argparse
import os

from django.core.management.base import BaseCommand, CommandError

from breathecode.feedback.benchmark.harness import (
    DEFAULT_POSTGRES_URL,
    Outcome,
    PostgreSQLScratch,
    SQLiteScratch,
    Strategy,
    build_data_set,
    machine_facts,
    measure,
)
from breathecode.utils.backfill.dialects import DIALECTS

BACKENDS = {"postgresql": PostgreSQLScratch, "sqlite": SQLiteScratch}

# Targets, checked on every data set and printed under the tables.
TARGETS = {
    "postgresql": {"vs_raw": 1.10, "vs_loop": 40, "rss_mb": 80, "chunk_ms": 250, "dry_run_s": 1.0, "rss_spread": 0.10,
                   "workers_vs_raw": 0.80},
    "sqlite": {"vs_raw": 1.20},
}


def positive_int(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def strategies(vendor, batch_sizes, workers):
    dialect = DIALECTS[vendor]
    return [
        Strategy("a", "(a) per-row ORM loop, as upstream", ("loop",)),
        Strategy("b", "(b) QuerySet.update(Subquery)", ("queryset",)),
        Strategy("c", "(c) one raw UPDATE ... FROM", ("raw",)),
        Strategy("d", "(d) this command, defaults", ("command",)),
        *(
            Strategy("e", f"(e) this command, --batch-size {size}", ("command", "--batch-size", str(size)), size)
            for size in batch_sizes
            if size != dialect.default_batch_size
        ),
        *(
            Strategy("w", f"(e) this command, --workers {n}", ("command", "--workers", str(n)))
            for n in (workers if dialect.supports_parallel_writers else [])
        ),
        Strategy("dry", "dry run (this command --dry-run)", ("dry-run",)),
    ]


class Command(BaseCommand):
    help = (
        "Build demo data sets of the given sizes on scratch databases and time, from the same starting "
        "state each time, the per-row ORM loop, QuerySet.update() with a Subquery, one raw UPDATE and "
        "backfill_feedback_syllabus at several batch sizes. Prints Markdown tables and checks every end state. "
        "Never touches the configured databases."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--rows", type=positive_int, nargs="+", default=[100_000],
            help="Answers in each data set (reviews are a tenth of that). Default: 100000.",
        )
        parser.add_argument(
            "--backend", choices=BACKENDS, nargs="+", default=list(BACKENDS),
            help="Backends to measure. Default: postgresql sqlite.",
        )
        parser.add_argument(
            "--repeat", type=positive_int, default=3,
            help="Runs per strategy; the table shows the median. A run over a minute is not repeated. Default: 3.",
        )
        parser.add_argument(
            "--batch-sizes", type=positive_int, nargs="*", default=[1000, 5000, 20000, 50000],
            help="Other batch sizes to run the command with, as strategy (e); the default one is skipped. "
            "Default: 1000 5000 20000 50000.",
        )
        parser.add_argument(
            "--workers", type=positive_int, nargs="*", default=[2, 4],
            help="Worker counts to run the command with on PostgreSQL, as strategy (e). Default: 2 4.",
        )
        parser.add_argument(
            "--loop-rows", type=positive_int, default=20_000,
            help="Largest data set the per-row loop (a) runs on; above it, (a) is timed at this size "
            "and extrapolated linearly, and labelled so. Default: 20000.",
        )
        parser.add_argument(
            "--postgres-url", default=os.environ.get("BENCHMARK_POSTGRES_URL", DEFAULT_POSTGRES_URL),
            help="A PostgreSQL server where the benchmark may create and drop databases named "
            f"backfill_bench_*. Default: $BENCHMARK_POSTGRES_URL or {DEFAULT_POSTGRES_URL}.",
        )
        parser.add_argument(
            "--quick", action="store_true",
            help="A smoke run: 2000 answers, one run each, one other batch size. Overrides --rows, "
            "--repeat, --batch-sizes and --loop-rows.",
        )

    def handle(self, *args, **options):
        if options["quick"]:
            options.update(rows=[2000], repeat=1, batch_sizes=[500], loop_rows=2000, workers=[2])
        self.verbosity = options["verbosity"]
        self.stdout.write("Machine: " + "; ".join(machine_facts()))
        wrong = 0
        for vendor in options["backend"]:
            outcomes = self._backend(vendor, options)
            wrong += sum(bool(o.wrong) for results in outcomes.values() for o in results)
            self._targets(vendor, outcomes)
        if wrong:
            raise CommandError(f"{wrong} strategies left a wrong end state; see WRONG in the tables above.")

    # -- running ------------------------------------------------------------------

    def _backend(self, vendor, options):
        """Measure every strategy on every size on one backend; returns {answers: [Outcome, ...]}."""
        try:
            scratch = PostgreSQLScratch(options["postgres_url"]) if vendor == "postgresql" else SQLiteScratch()
        except Exception as error:
            raise CommandError(f"Cannot use {vendor} for the benchmark: {error}") from error
        outcomes = {}
        try:
            self.stdout.write(f"\n## {scratch.version()}\n\nSettings: {scratch.settings()}")
            data_sets = {}
            for answers in sorted({*options["rows"], *(min(n, options["loop_rows"]) for n in options["rows"])}):
                self._progress(f"{vendor}: building {answers} answers ...")
                data_sets[answers] = build_data_set(scratch, answers)
            loops = {}
            for answers in sorted(options["rows"]):
                data = data_sets[answers]
                results = []
                for strategy in strategies(vendor, options["batch_sizes"], options["workers"]):
                    if strategy.key == "a":
                        small = data_sets[min(answers, options["loop_rows"])]
                        if small.answers not in loops:
                            loops[small.answers] = self._measure(vendor, scratch, small, strategy, options["repeat"])
                        results.append(loops[small.answers])
                    else:
                        results.append(self._measure(vendor, scratch, data, strategy, options["repeat"]))
                outcomes[answers] = results
                self._table(data, results)
        finally:
            scratch.close()
        return outcomes

    def _measure(self, vendor, scratch, data, strategy, repeat) -> Outcome:
        self._progress(f"{vendor}: {data.answers} answers, {strategy.label} ...")
        outcome = measure(scratch, data, strategy, repeat=repeat)
        runs = ", ".join(f"{run['seconds']:.2f}" for run in outcome.runs)
        self._progress(f"  {runs} s {'WRONG: ' + outcome.wrong[0] if outcome.wrong else 'OK'}")
        return outcome

    def _progress(self, text):
        if self.verbosity >= 1:
            self.stderr.write(text)

    # -- presentation -------------------------------------------------------------

    def _table(self, data, results):
        by_key = {o.strategy.key: o for o in results}
        loop, raw = by_key["a"], by_key["c"]
        loop_seconds = loop.seconds * data.fillable / max(1, loop.rows)
        reviews = data.before["review"][0]
        self.stdout.write(
            f"\n### {data.answers:,} answers + {reviews:,} reviews, {data.fillable:,} rows to fill\n"
        )
        self.stdout.write(
            "| strategy | wall s | runs | rows/s | time ÷ (c) | speed-up over (a) | peak RSS MB "
            "| longest chunk ms | median chunk ms | end state |"
        )
        self.stdout.write("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
        for outcome in results:
            seconds, label = outcome.seconds, outcome.strategy.label
            if outcome.strategy.key == "d" and outcome.runs[0].get("batch_size"):
                label += f" (batch {outcome.runs[0]['batch_size']})"
            if outcome is loop and loop.answers != data.answers:
                seconds = loop_seconds
                label += f" *extrapolated from {loop.answers:,} answers ({loop.seconds:.2f} s)*"
            writes = outcome.strategy.writes
            cells = [
                label,
                f"{seconds:.2f}",
                str(len(outcome.runs)),
                f"{data.fillable / seconds:,.0f}" if writes else "",
                f"{seconds / raw.seconds:.2f}" if writes else "",
                f"{loop_seconds / seconds:,.1f}" if writes else "",
                f"{outcome.peak_rss_mb:.0f}",
                f"{outcome.longest_chunk * 1000:.0f}" if outcome.longest_chunk is not None and writes else "",
                f"{outcome.median_chunk * 1000:.0f}" if outcome.median_chunk is not None and writes else "",
                f"WRONG: {outcome.wrong[0]}" if outcome.wrong else "OK",
            ]
            self.stdout.write("| " + " | ".join(cells) + " |")
        baseline = min(o.start_rss_mb for o in results)
        self.stdout.write(
            f"\nwall s: median of the runs, the work only (interpreter and Django start-up excluded). "
            f"Peak RSS: the child process doing the work; {baseline:.0f} MB of it is Python, Django and "
            "the driver before any work."
        )

    def _targets(self, vendor, outcomes):
        targets = TARGETS[vendor]
        lines = []

        def verdict(ok, text):
            lines.append(f"- {'met' if ok else 'MISSED'}: {text}")

        for answers, results in sorted(outcomes.items()):
            by_key = {o.strategy.key: o for o in results}
            command, raw, loop, dry = by_key["d"], by_key["c"], by_key["a"], by_key["dry"]
            loop_seconds = loop.seconds * command.rows / max(1, loop.rows)
            ratio = command.seconds / raw.seconds
            verdict(ratio <= targets["vs_raw"], f"{answers:,} answers: (d) takes {ratio:.2f}× (c) (target ≤ {targets['vs_raw']:.2f}×)")
            two = next((o for o in results if o.strategy.argv == ("command", "--workers", "2")), None)
            if two and "workers_vs_raw" in targets:
                ratio = two.seconds / raw.seconds
                verdict(
                    ratio <= targets["workers_vs_raw"],
                    f"{answers:,} answers: --workers 2 takes {ratio:.2f}× (c) (target ≤ {targets['workers_vs_raw']:.2f}×)",
                )
            if "vs_loop" in targets:
                speedup = loop_seconds / command.seconds
                verdict(speedup >= targets["vs_loop"], f"{answers:,} answers: (d) is {speedup:,.0f}× faster than (a) (target ≥ {targets['vs_loop']}×)")
                verdict(command.peak_rss_mb <= targets["rss_mb"], f"{answers:,} answers: (d) peak RSS {command.peak_rss_mb:.0f} MB (target ≤ {targets['rss_mb']} MB)")
                longest = (command.longest_chunk or 0) * 1000
                verdict(longest <= targets["chunk_ms"], f"{answers:,} answers: (d) longest chunk {longest:.0f} ms (target ≤ {targets['chunk_ms']} ms)")
                verdict(dry.seconds < targets["dry_run_s"], f"{answers:,} answers: dry run {dry.seconds:.2f} s (target < {targets['dry_run_s']} s)")
        if "rss_spread" in targets and len(outcomes) > 1:
            sizes = sorted(outcomes)
            small, large = ({o.strategy.key: o for o in outcomes[n]}["d"].peak_rss_mb for n in (sizes[0], sizes[-1]))
            spread = (large - small) / small
            verdict(
                abs(spread) <= targets["rss_spread"],
                f"(d) peak RSS {small:.0f} MB at {sizes[0]:,} and {large:.0f} MB at {sizes[-1]:,} answers: "
                f"{spread:+.0%} (target within ±{targets['rss_spread']:.0%})",
            )
        self.stdout.write(f"\nTargets ({vendor}):\n" + "\n".join(lines))
