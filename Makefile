# isoinspect developer entry points. All targets must be run as root (the host is set up for real).
#   make setup   idempotent host + venv set-up (fast when nothing to do)
#   make test    setup, start dockerd, run the whole test suite
#   make demo    setup, start-up comparison + limit verification (traced), HTML report
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

# The main job: quick start-up comparison and verification with tracing, then the HTML report;
# the last line printed is the report's path.
demo: setup dockerd
	$(ISOINSPECT) doctor
	ISOINSPECT_VENV=$(VENV) ISOINSPECT_DEMO_SETUP=0 scripts/demo.sh $(CURDIR)/isoinspect-report.html

clean:
	rm -rf .pytest_cache build
	find . -path ./.venv -prune -o -path ./.git -prune -o \
	    \( -name __pycache__ -type d -o -name '*.egg-info' -type d \) -print0 | xargs -0r rm -rf

distclean: clean
	rm -rf $(VENV)
