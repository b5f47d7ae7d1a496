# Two commands: `make run` and `make test`. Each builds .venv from the lock files when it is missing
# or a lock changed. requirements.txt and requirements-dev.txt pin every package, transitive ones
# included, with their hashes; --require-hashes makes pip refuse anything else (a package the lock
# does not name, or a download that is not the file the lock was made from). `make lock` remakes
# them from requirements.in and requirements-dev.in (see the README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bench clean-venv lock

$(VENV)/.installed-run: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed-run
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed-run
	$(PY) app.py serve

test: $(VENV)/.installed-dev
	$(PY) -m pytest

bench: $(VENV)/.installed-dev
	$(PY) bench/transfer.py

clean-venv:
	rm -rf $(VENV)

# Needs pip-compile (pip-tools) on the PATH or in LOCK_TOOL (not a PIP_* name: pip reads those as
# its own options), from a scratch venv outside the repo. Only PyPI is
# asked, whatever the machine's pip configuration says, so the locks name PyPI's files alone.
LOCK_TOOL ?= pip-compile
LOCK_FLAGS := --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	--index-url https://pypi.org/simple
lock:
	PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= $(LOCK_TOOL) $(LOCK_FLAGS) --output-file requirements.txt requirements.in
	PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= $(LOCK_TOOL) $(LOCK_FLAGS) --output-file requirements-dev.txt requirements-dev.in
