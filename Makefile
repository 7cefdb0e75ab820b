# Quick start: `make demo` (serve the demo study) and `make test` (run the whole suite).
# Both create .venv/ at the repository root on first use and reuse it afterwards.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test lint check clean-demo bench-metrics bench-analysis bench-preferences bench-study bench-load bench-upload serve-prod worker

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamps: reinstall only when a requirements file changes.
$(VENV)/.runtime-installed: requirements.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt
	@touch $@

$(VENV)/.test-installed: requirements-test.txt $(VENV)/.runtime-installed
	$(PIP) install --quiet -r requirements-test.txt
	@touch $@

# A local secret key and debug mode for the demo; production sets its own environment.
.env:
	@printf 'DJANGO_SECRET_KEY=%s\nDJANGO_DEBUG=true\n' "$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')" > $@
	@echo "wrote .env (local secret key, debug on)"

demo: $(VENV)/.runtime-installed .env
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py build_demo
	$(PY) manage.py run_demo

test: $(VENV)/.test-installed
	$(PY) manage.py makemigrations --check --dry-run --settings=tests.settings
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
	$(PY) -m pytest

lint: $(VENV)/.test-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Forget the demo's database, broker and images (the next `make demo` rebuilds them).
clean-demo:
	rm -rf var/db.sqlite3* var/celery-broker.sqlite3* var/media

# Metric throughput on real MR pairs, against plain implementations in the same run.
bench-metrics: $(VENV)/.runtime-installed
	$(PY) -m metrics.bench.metrics

# The statistics engine on a simulated 10-reader x 2,000-reconstruction study, and
# `manage.py analyze` end to end on its CSV files, against a plain per-resample scipy script.
bench-analysis: $(VENV)/.runtime-installed
	$(PY) -m metrics.bench.analysis

# Ranking and forced-choice statistics at 10 readers x 2,000 reconstructions, against a plain loop.
bench-preferences: $(VENV)/.runtime-installed
	$(PY) -m metrics.bench.preferences $(BENCH_ARGS)

# A study archive (1 GB, and 0.25 GB to compare) uploaded to gunicorn and imported by the
# import task, on a scratch data folder: times and peak memory of the web worker and the import.
bench-upload: $(VENV)/.runtime-installed
	$(PY) -m readerstudy.bench.upload $(BENCH_ARGS)

# A whole study through import, the Celery workers and the dashboard, stage by stage, on a
# scratch data folder (SQLite database and broker unless BENCH_DATABASE_URL, a database named
# *_bench, and BENCH_BROKER_URL are set). BENCH_ARGS sets the size, e.g. "--volumes 200
# --slices 35 --size 320" for a fastMRI-knee-sized study.
bench-study: $(VENV)/.runtime-installed
	$(PY) -m readerstudy.bench.study $(BENCH_ARGS)

# Readers and dashboards against gunicorn + PostgreSQL on loopback (a scratch database named
# *_bench, created if missing; Redis as the shared cache). About a minute.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/readerstudy_bench
BENCH_CACHE_URL ?= redis://127.0.0.1:6379/14
BENCH_BROKER_URL ?= redis://127.0.0.1:6379/13
bench-load: $(VENV)/.test-installed
	@psql "$(dir $(BENCH_DATABASE_URL))postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = '$(notdir $(BENCH_DATABASE_URL))'" | grep -q 1 \
	  || psql "$(dir $(BENCH_DATABASE_URL))postgres" -c "CREATE DATABASE $(notdir $(BENCH_DATABASE_URL))"
	DATABASE_URL=$(BENCH_DATABASE_URL) CACHE_URL=$(BENCH_CACHE_URL) CELERY_BROKER_URL=$(BENCH_BROKER_URL) \
	  DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-bench-load-only} \
	  DJANGO_READ_DOT_ENV=false $(PY) manage.py bench_load $(BENCH_ARGS)

# Production: the environment holds the settings (README, Configuration). gunicorn serves the
# app and whitenoise its static files; put a TLS-terminating proxy in front. A sync worker
# reading an upload is killed after GUNICORN_TIMEOUT seconds: the proxy buffers request bodies
# (docs/deployment.md, Uploads), so that this covers only the copy from the proxy.
serve-prod: $(VENV)/.runtime-installed
	$(PY) manage.py check --deploy
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	$(VENV)/bin/gunicorn readerstudy.config.wsgi --bind "$${BIND:-127.0.0.1:8000}" \
	  --workers "$${WEB_CONCURRENCY:-4}" --timeout "$${GUNICORN_TIMEOUT:-300}" --access-logfile -

# A Celery worker; on a GPU machine run WORKER_QUEUES=metrics (same database, broker, media).
worker: $(VENV)/.runtime-installed
	$(VENV)/bin/celery -A readerstudy.config worker --queues "$${WORKER_QUEUES:-default,metrics}" \
	  --concurrency "$${WORKER_CONCURRENCY:-1}" --loglevel INFO
