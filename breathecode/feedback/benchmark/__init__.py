"""Benchmark of the syllabus backfill against the ways it replaces.

- :mod:`.strategies` runs one strategy on one database, in a process of its own;
- :mod:`.harness` builds the data sets, clones them per run, starts those
  processes and checks every end state;
- ``python manage.py benchmark_backfill`` drives both and prints the table.
"""
