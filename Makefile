# Two commands set up and run a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast clean

$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(PY) tools/convert_det.py

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile tests

# development loop: everything but the tests marked slow (compiles, training runs, whole-tool subprocesses)
test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow" tests

clean:
	rm -rf $(VENV) .pytest_cache
