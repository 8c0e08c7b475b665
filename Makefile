# Two commands: `make demo` and `make test`. Each bootstraps .venv on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: install demo test lint typecheck pytest bench simulate clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --python $(PY) -q -c constraints.txt -e '.[vertex,test]' \
	  || $(PY) -m pip install -q -c constraints.txt -e '.[vertex,test]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/airflow-jobstatus demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	$(PY) -m pytest -q -p no:cacheprovider

test: lint typecheck pytest

bench: install
	$(PY) benchmarks/run.py

simulate: install
	$(VENV)/bin/airflow-jobstatus simulate

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .airflow-demo
