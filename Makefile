# `make run` starts VIAS; `make test` runs the test suite; `make lint` checks style and types.
PYTHON ?= python3
VENV := .venv
HOST ?= 127.0.0.1
PORT ?= 8000
# A copy of the requirements installed last: pip runs again only when the file's content changes.
STAMP := $(VENV)/.requirements.installed

.PHONY: run test lint deps

run: deps
	$(VENV)/bin/python manage.py up --host $(HOST) --port $(PORT)

test: deps
	$(VENV)/bin/python scripts/run_tests.py $(ARGS)

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

deps: $(VENV)/bin/python
	@cmp -s requirements.txt $(STAMP) || { \
		echo "Installing requirements.txt into $(VENV) ..." && \
		$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt && \
		cp requirements.txt $(STAMP); \
	}

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
