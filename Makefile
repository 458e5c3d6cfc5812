# Two commands matter: `make demo` (the example pipeline end to end) and `make test`.
# Each creates its own virtualenv and installs what it needs.
PYTHON ?= $(shell for p in python3.11 python3.10 python3.9 python3; do command -v $$p >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench install clean typecheck

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' -r example-get-started/requirements.txt
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python example-get-started/demo.py $(DEMO_ARGS)

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks.run $(BENCH_ARGS)

typecheck: $(STAMP)
	$(BIN)/python -m mypy cmfrun

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
