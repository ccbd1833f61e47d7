# trainrx: `make run` starts the whole service; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

.PHONY: run test install install-dev openapi clean worker api bench bench-long migrate

$(VENV)/.installed: requirements.txt clients/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -e ./clients/python
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt clients/python/pyproject.toml
	$(PIP) install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install ## Migrates the database, then the API, one worker and (when REDIS_URL is unset) an embedded Redis
	$(PY) -m core.stack

migrate: install ## Bring the database (DATABASE_URL, else SQLite under TRAINRX_DATA_DIR) to the newest schema
	$(PY) -m core.migrate

test: install-dev ## The whole suite (real Redis, database, worker processes, tiny trainings; Chromium if present)
	@if [ "$${TRAINRX_BROWSER_TESTS:-1}" = 0 ]; then \
	  echo "make test: the browser tests (tests/e2e/test_dashboard_browser.py) are skipped: TRAINRX_BROWSER_TESTS=0"; \
	elif [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "make test: the browser tests (tests/e2e/test_dashboard_browser.py) are skipped: no /usr/bin/chromium" \
	       "or /usr/bin/chromedriver (apt-get install chromium chromium-driver)"; \
	fi
	$(PY) -m pytest

openapi: install ## Regenerate openapi.yaml from the app
	$(PY) -m service.openapi > openapi.yaml

worker: install ## One worker for an existing Redis (run `make migrate` first): make worker QUEUE=gpu
	$(PY) -m celery -A workers.celery_app worker -Q $${QUEUE:-cpu} --pool threads --concurrency 1 -l INFO

api: install ## Only the API, for an existing Redis (run `make migrate` first)
	$(PY) -m gunicorn -c service/gunicorn_conf.py --bind 127.0.0.1:$${PORT:-8000} service.wsgi:app

bench: install-dev ## The issue-12 table's CPU benchmarks in a few minutes (bench/run_all.py lists them)
	$(PY) bench/run_all.py

bench-long: install-dev ## The older, longer benchmarks, one after another (each prints its own table)
	$(PY) bench/probe_overhead.py
	$(PY) bench/epoch_rate.py
	$(PY) bench/streams.py
	$(PY) bench/load.py
	$(PY) bench/plots.py

clean:
	rm -rf $(VENV) var .pytest_cache
