# Two commands: `make demo` and `make test`. Each bootstraps .venv on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEPLOY_STAMP := $(VENV)/.deployment-stamp
PYTHON ?= python3

.PHONY: install demo test lint typecheck pytest test-deployment bench simulate clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --python $(PY) -q -c constraints.txt -e '.[vertex,test]' \
	  || $(PY) -m pip install -q -c constraints.txt -e '.[vertex,test]'
	@touch $(STAMP)

install: $(STAMP)

# The deployment harness's PostgreSQL drivers (the harness installs the PostgreSQL server itself).
$(DEPLOY_STAMP): $(STAMP)
	$(VENV)/bin/uv pip install --python $(PY) -q -c constraints.txt -e '.[vertex,test,deployment]' \
	  || $(PY) -m pip install -q -c constraints.txt -e '.[vertex,test,deployment]'
	@touch $(DEPLOY_STAMP)

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

# PostgreSQL + scheduler, dag-processor, api-server and two triggerers as separate processes (docs/deployment.md).
test-deployment: $(DEPLOY_STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m deployment -rfExX tests/deployment

bench: install
	$(PY) benchmarks/run.py

simulate: install
	$(VENV)/bin/airflow-jobstatus simulate

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .airflow-demo
