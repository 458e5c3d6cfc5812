# Two commands matter: `make demo` (the example pipeline end to end) and `make test`.
# Each creates its own virtualenv and installs what it needs.
PYTHON ?= $(shell for p in python3.11 python3.10 python3.9 python3; do command -v $$p >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# HPE's cmflib 0.1.0 in its own virtualenv (it pins ml-metadata 1.15): the tests read our stores with it.
CMFLIB_VENV ?= .venv-cmflib
# cmflib pins ml-metadata (wheels for <= 3.11 only): its venv stays on 3.11 whatever PYTHON is.
CMFLIB_PYTHON ?= $(shell for p in python3.11 python3.10 python3.9; do command -v $$p >/dev/null 2>&1 && { echo $$p; break; }; done)
CMFLIB_STAMP := $(CMFLIB_VENV)/.installed

.PHONY: demo test bench install clean typecheck

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' -r example-get-started/requirements.txt
	touch $(STAMP)

$(CMFLIB_STAMP):
	$(CMFLIB_PYTHON) -m venv $(CMFLIB_VENV)
	$(CMFLIB_VENV)/bin/pip install -q --upgrade pip
	$(CMFLIB_VENV)/bin/pip install -q cmflib==0.1.0
	touch $(CMFLIB_STAMP)

install: $(STAMP)

test: $(STAMP) $(CMFLIB_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" CMFRUN_CMFLIB_PYTHON="$(CURDIR)/$(CMFLIB_VENV)/bin/python" \
		$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python example-get-started/demo.py $(DEMO_ARGS)

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.run $(BENCH_ARGS)

typecheck: $(STAMP)
	$(BIN)/python -m mypy cmfrun

clean:
	rm -rf $(VENV) $(CMFLIB_VENV) .pytest_cache build *.egg-info
