# One-command set-up: `make demo` and `make test` each build the virtual
# environment in .venv (every dependency, madmom included) and then run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed
LOCK   := requirements/lock.txt

.PHONY: install lock browser renderer demo test test-fast docs clean

install: $(STAMP)

# The environment is requirements/lock.txt, exactly: every package, transitive ones
# included, at the version the suite was run with (`make lock` regenerates it).
# madmom 0.16.1 is only published as source and needs numpy and Cython present at
# build time, hence the two-step order and --no-build-isolation; --no-deps because
# the lock already names every dependency; requirements/sync.py then removes whatever
# the environment holds beyond the lock.
$(STAMP): setup.cfg pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c $(LOCK) pip setuptools wheel
	$(PIP) install -q -c $(LOCK) numpy cython
	$(PIP) install -q --no-deps --no-build-isolation -r $(LOCK)
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PY) requirements/sync.py $(LOCK)
	$(PIP) check
	touch $(STAMP)

# Regenerates requirements/lock.txt in a throw-away environment from setup.cfg's
# ranges and requirements/pins.txt; run `make clean test` before committing it.
lock:
	PYTHON=$(PYTHON) bash requirements/lock.sh

demo: install
	$(PY) -m mdsim.demo --out demo_out

# The browser tests (pytest marker `browser`) drive Debian's Chromium through Playwright
# (Playwright's own browser download is not used). Installed here when missing and
# possible (root with apt-get, as in CI); elsewhere those tests skip, saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "no chromium and no root apt-get: the browser tests will be skipped (apt-get install chromium)"; \
	  fi; }

# The rendered-corpus tests (tests/test_rendered.py, tests/test_default_model.py) play generated
# scores through FluidSynth with Debian's General MIDI soundfonts: FluidR3_GM and MuseScore_General
# (MIT; the default model is trained on them) and TimGM6mb (GPL-2; held out: it only measures).
# Installed here when missing and possible (root with apt-get, as in CI); elsewhere those tests
# skip, saying why.
SOUNDFONTS := /usr/share/sounds/sf2/FluidR3_GM.sf2 /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 /usr/share/sounds/sf2/TimGM6mb.sf2
RENDERER_PACKAGES := fluidsynth fluid-soundfont-gm musescore-general-soundfont-small timgm6mb-soundfont
renderer:
	@( command -v fluidsynth >/dev/null 2>&1 && for f in $(SOUNDFONTS); do test -f $$f || exit 1; done ) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's fluidsynth and soundfonts for the rendered-corpus tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(RENDERER_PACKAGES) >/dev/null; } \
	      || echo "could not install fluidsynth: the rendered-corpus tests will be skipped"; \
	  else \
	    echo "no fluidsynth and no root apt-get: the rendered-corpus tests will be skipped (apt-get install $(RENDERER_PACKAGES))"; \
	  fi; }

# The suite runs in TEST_WORKERS pytest-xdist processes (default 2, this project's CI machine's
# cores; TEST_WORKERS=0 runs it in one process), each test file whole in one of them; the
# longest files start first (tests/conftest.py, LONG_FILES). Three of the slowest tests used
# about 1.35 of two cores (imports, XLA compiles, subprocesses and the Python around small
# steps run on one core): a second worker fills the other. From a fresh clone the suite took
# 37 min 24 s this way against 52 min 45 s in one process, and 36 min 11 s with a CPU-bound job
# beside it once TensorFlow's oneDNN kernels were on (docs/installation.md).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: install browser renderer
	$(PY) -m pytest -q -ra --durations=25 $(XDIST)

test-fast: install
	$(PY) -m pytest -q -ra -m "not slow" $(XDIST)

# Regenerates docs/reference.md from the docstrings, checks every relative link of
# README.md and docs/*.md and runs their examples; `$(PY) docs/build.py --check`
# writes nothing and fails on a stale reference (tests/test_docs.py does the same).
docs: install
	$(PY) docs/build.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
