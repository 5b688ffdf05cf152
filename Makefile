# Every target bootstraps .venv itself: a fresh machine needs only Python 3.10+ and make.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# The suite runs on each of these that the machine has (on PATH or under pyenv):
# the swap core touches interpreter internals, so one green version proves
# nothing about another.
SUPPORTED := 3.10 3.11 3.12 3.13

.PHONY: demo test test-all lint docs bench clean $(addprefix suite-,$(SUPPORTED))

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,docs,watch,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: lint docs test-all

# How many Pythons run the suite at once (JOBS=1: one after another).
JOBS ?= 2

# The newest Python X.Y under pyenv or on PATH that runs, or nothing.
python_for = $(shell for candidate in $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$(1).*/bin/python$(1) 2>/dev/null | sort -V -r) $$(command -v python$(1) 2>/dev/null); do \
    if $$candidate -c 'import sys' >/dev/null 2>&1; then echo $$candidate; break; fi; done)

# One virtual environment per supported Python (.venv-3.X), made on first use,
# made one after another; then the suite runs on JOBS of them at once, each
# one's output printed whole when it ends.
# The suite of .venv's own Python runs in .venv (it has every test extra).
test-all: $(STAMP)
	@$(eval FOUND := $(foreach version,$(SUPPORTED),$(if $(call python_for,$(version)),$(version))))
	@$(eval MAIN := $(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])'))
	@for version in $(filter-out $(FOUND),$(SUPPORTED)); do echo "== Python $$version: not on this machine, not tested"; done
	@if [ -z "$(FOUND)" ]; then echo "no supported Python found"; exit 1; fi
	@$(MAKE) --no-print-directory $(foreach version,$(filter-out $(MAIN),$(FOUND)),.venv-$(version)/.installed-stamp)
	@$(MAKE) --no-print-directory -j$(JOBS) --output-sync=target MAIN=$(MAIN) $(addprefix suite-,$(FOUND))
	@echo "== the suite passed on Python $(FOUND)"

.venv-%/.installed-stamp: pyproject.toml
	$(call python_for,$*) -m venv .venv-$*
	.venv-$*/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,watch]'
	touch $@

venv_of = $(if $(filter $(1),$(MAIN)),$(VENV),.venv-$(1))

$(addprefix suite-,$(SUPPORTED)): suite-%:
	@echo "== Python $* ($$($(call venv_of,$*)/bin/python --version))"
	$(call venv_of,$*)/bin/python -m pytest

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
