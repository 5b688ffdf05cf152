# Every target bootstraps .venv itself: a fresh machine needs only Python 3.10+ and make.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# The suite runs on each of these that the machine has (on PATH or under pyenv):
# the swap core touches interpreter internals, so one green version proves
# nothing about another.
SUPPORTED := 3.10 3.11 3.12 3.13

.PHONY: demo test test-all lint docs bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,docs,watch,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: lint docs test-all

# One virtual environment per supported Python (.venv-3.X), made on first use.
test-all: $(STAMP)
	@set -e; ran=""; \
	for version in $(SUPPORTED); do \
	    python=""; \
	    for candidate in $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$version.*/bin/python$$version 2>/dev/null | sort -V -r) \
	                     $$(command -v python$$version 2>/dev/null); do \
	        if $$candidate -c 'import sys' >/dev/null 2>&1; then python=$$candidate; break; fi; \
	    done; \
	    if [ -z "$$python" ]; then echo "== Python $$version: not on this machine, not tested"; continue; fi; \
	    venv=.venv-$$version; \
	    if [ ! -f $$venv/.installed-stamp ] || [ pyproject.toml -nt $$venv/.installed-stamp ]; then \
	        $$python -m venv $$venv; \
	        $$venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,watch]'; \
	        touch $$venv/.installed-stamp; \
	    fi; \
	    echo "== Python $$version ($$python)"; \
	    $$venv/bin/python -m pytest; \
	    ran="$$ran $$version"; \
	done; \
	if [ -z "$$ran" ]; then echo "no supported Python found"; exit 1; fi; \
	echo "== the suite passed on Python$$ran"

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks examples
	$(PY) -m ruff format --check src tests benchmarks examples
	$(PY) -m mypy

docs: $(STAMP)
	$(PY) -m mkdocs build --strict --quiet --site-dir site

bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) $(VENV)-* site .pytest_cache .mypy_cache .ruff_cache .hypothesis
