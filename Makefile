# isoinspect developer entry points. All targets must be run as root (the host is set up for real).
#   make setup   idempotent host + venv set-up (fast when nothing to do)
#   make test    setup, start dockerd, run the whole test suite
#   make demo    setup, then the main job: `isoinspect compare --quick` (~10 min), HTML report
#   make clean   remove caches and build leftovers (keeps .venv; `make distclean` removes it too)
SHELL := /bin/bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
ISOINSPECT := $(VENV)/bin/isoinspect
PYTEST_ARGS ?=
# What `make test` collects (the CI test of the exit-code path points it at an empty folder).
ISOINSPECT_TESTS ?= tests

.PHONY: setup dockerd test demo clean distclean

setup:
	ISOINSPECT_VENV=$(VENV) scripts/setup.sh

dockerd: setup
	scripts/start-dockerd.sh

# pytest's exit code is make's: 5 ("no tests collected") fails like any other failure.
test: setup dockerd
	$(PYTHON) -m pytest -q $(ISOINSPECT_TESTS) $(PYTEST_ARGS)

# The main job: every measurement (start-up with the VM, namespaces, concurrency, verification,
# overhead, density, exposure, isolation), then the HTML report; the last line printed is the
# report's path. COMPARE_ARGS: more `isoinspect compare` options (e.g. --skip density).
COMPARE_ARGS ?=
demo: setup dockerd
	$(ISOINSPECT) doctor >&2
	$(ISOINSPECT) compare --quick -o $(CURDIR)/isoinspect-report.html $(COMPARE_ARGS)

clean:
	rm -rf .pytest_cache build
	find . -path ./.venv -prune -o -path ./.git -prune -o \
	    \( -name __pycache__ -type d -o -name '*.egg-info' -type d \) -print0 | xargs -0r rm -rf

distclean: clean
	rm -rf $(VENV)
