# One-command set-up: `make demo` and `make test` each build the virtual
# environment in .venv (every dependency, madmom included) and then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast docs clean

install: $(STAMP)

# madmom 0.16.1 is only published as source and needs numpy and Cython
# present at build time, hence --no-build-isolation and the two-step order.
$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q "numpy>=1.24,<2.3" "cython>=3"
	$(PIP) install -q --no-build-isolation madmom==0.16.1
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

demo: install
	$(PY) -m mdsim.demo --out demo_out

test: install
	$(PY) -m pytest -q -ra

test-fast: install
	$(PY) -m pytest -q -ra -m "not slow"

# Regenerates docs/reference.md from the docstrings, checks every relative link of
# README.md and docs/*.md and runs their examples; `$(PY) docs/build.py --check`
# writes nothing and fails on a stale reference (tests/test_docs.py does the same).
docs: install
	$(PY) docs/build.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
