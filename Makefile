# The README's two commands: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ROWS ?= 100000

.PHONY: install demo test

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Migrate, create demo data, dry run, real run, and a second run that finds 0.
demo: install
	$(PY) manage.py migrate --no-input -v 0
	$(PY) manage.py create_demo_data --answers $(ROWS)
	$(PY) manage.py backfill_feedback_syllabus --dry-run
	$(PY) manage.py backfill_feedback_syllabus
	$(PY) manage.py backfill_feedback_syllabus

test: install
	$(PY) -m pytest
