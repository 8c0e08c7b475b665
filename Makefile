# Two commands: `make demo` and `make test`. Each bootstraps .venv on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEPLOY_STAMP := $(VENV)/.deployment-stamp
UI_STAMP := $(VENV)/.ui-stamp
PYTHON ?= python3

.PHONY: install demo test lint typecheck pytest test-matrix test-e2e test-deployment test-deployment-oldest test-ui chromium bench bench-deployment simulate clean

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

# The Cloud jobs page's browser driver (Selenium).
$(UI_STAMP): $(STAMP)
	$(VENV)/bin/uv pip install --python $(PY) -q -c constraints.txt -e '.[vertex,test,ui]' \
	  || $(PY) -m pip install -q -c constraints.txt -e '.[vertex,test,ui]'
	@touch $(UI_STAMP)

# Debian's Chromium and its driver (one package version), when missing; needs root, like CI.
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }

demo: install
	$(VENV)/bin/airflow-jobstatus demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

# The fast layers (README "Development"): unit, wire (real SDKs to the simulator), airflow (dag.test()).
pytest: install
	$(PY) -m pytest -q -p no:cacheprovider tests/unit tests/wire tests/airflow

# Lint, types and the fast layers; prints how long it took (the budget is 3 minutes on 2 quiet cores).
test:
	@start=$$(date +%s); $(MAKE) --no-print-directory lint typecheck pytest; rc=$$?; \
	  echo "make test: $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc

# The unit and dag.test() layers on every supported Airflow minor (3.1.8, 3.2.2, 3.3.2; MATRIX= to
# choose), each with no project constraints and the Google provider beside it; one venv per version,
# cached outside the checkout (.ci/matrix says where and when it is rebuilt).
MATRIX ?=
test-matrix: install
	@start=$$(date +%s); .ci/matrix $(MATRIX); rc=$$?; \
	  echo "make test-matrix: $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc

# Real processes: airflow standalone, an example DAG as a script, the benchmark harness's smoke run.
test-e2e: install
	$(PY) -m pytest -q -p no:cacheprovider -m e2e -rfExX tests/e2e

# PostgreSQL + scheduler, dag-processor, api-server and two triggerers as separate processes (docs/deployment.md).
test-deployment: $(DEPLOY_STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m deployment -rfExX tests/deployment

# The deployment harness's fleet and triggerer-loss scenarios with every Airflow component on the oldest
# supported Airflow (its matrix venv); the harness and the simulator run from .venv.
OLDEST_AIRFLOW ?= 3.1.8
test-deployment-oldest: $(DEPLOY_STAMP)
	JOBSTATUS_DEPLOY_VENV=$$(.ci/matrix --venv $(OLDEST_AIRFLOW)) \
	  $(PY) -m pytest -q -p no:cacheprovider -m deployment -rfExX tests/deployment/test_deployment.py \
	  -k "test_fleet or test_triggerer_loss"

# The Cloud jobs page in airflow standalone and headless Chromium (docs/ui.md); screenshot in tests/ui/artifacts.
test-ui: $(UI_STAMP) chromium
	$(PY) -m pytest -q -p no:cacheprovider -m ui -rfExX tests/ui

bench: install
	$(PY) benchmarks/run.py

# The scale scenario in a real deployment, not in CI (docs/deployment.md "At scale"): 2,000 sensors in two
# triggerers beside the Google provider's Dataproc operator; BENCH_DEPLOYMENT_ARGS="--waits 10000" etc.
BENCH_DEPLOYMENT_ARGS ?=
bench-deployment: $(DEPLOY_STAMP)
	$(PY) benchmarks/deployment_scale.py $(BENCH_DEPLOYMENT_ARGS)

simulate: install
	$(VENV)/bin/airflow-jobstatus simulate

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .airflow-demo tests/ui/artifacts
