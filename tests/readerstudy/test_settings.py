"""Settings come from the environment: a fresh interpreter sees what the variables say."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def environment_without_settings() -> dict[str, str]:
    """This process's environment less every variable the settings read."""
    prefixes = (
        "DJANGO",
        "DATABASE",
        "CELERY",
        "READERSTUDY",
        "METRICS",
        "DFD",
        "CACHE",
        "DASHBOARD",
    )
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def environment_with(env: dict[str, str]) -> dict[str, str]:
    """The production settings module, no `.env` file, and of the settings' variables only
    `env`."""
    return {
        **environment_without_settings(),
        "DJANGO_SETTINGS_MODULE": "readerstudy.config.settings",
        "DJANGO_READ_DOT_ENV": "false",
        **env,
    }


def settings_under(env: dict[str, str]) -> dict:
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps({'db': settings.DATABASES['default']['ENGINE'], "
        "'name': str(settings.DATABASES['default']['NAME']), 'broker': settings.CELERY_BROKER_URL, "
        "'debug': settings.DEBUG, 'hosts': settings.ALLOWED_HOSTS, 'device': settings.METRICS_DEVICE, "
        "'weights': str(settings.DFD_WEIGHTS_DIR), 'sessions': settings.SESSION_ENGINE, "
        "'compile': settings.METRICS_COMPILE, 'precision': settings.METRICS_PRECISION}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environment_with(env),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_defaults_need_no_server(tmp_path):
    seen = settings_under({"DJANGO_SECRET_KEY": "x", "READERSTUDY_DATA_DIR": str(tmp_path)})
    assert seen["db"] == "django.db.backends.sqlite3" and seen["name"] == str(
        tmp_path / "db.sqlite3"
    )
    assert seen["broker"] == f"sqla+sqlite:///{tmp_path / 'celery-broker.sqlite3'}"
    assert seen["debug"] is False and seen["device"] == "auto"
    assert seen["precision"] == "fp32" and seen["compile"] is False, "the recipes, uncompiled"
    # A per-process cache must not hold sessions: a sign-out would not reach the other workers.
    assert seen["sessions"] == "django.contrib.sessions.backends.db"


def test_production_variables_are_honoured(tmp_path):
    seen = settings_under(
        {
            "DJANGO_SECRET_KEY": "x",
            "READERSTUDY_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://u:p@db.example:5432/studies",
            "CELERY_BROKER_URL": "redis://cache.example:6379/0",
            "DJANGO_ALLOWED_HOSTS": "studies.example.org,localhost",
            "METRICS_DEVICE": "cuda",
            "METRICS_PRECISION": "fp16",
            "METRICS_COMPILE": "true",
            "DFD_WEIGHTS_DIR": "/srv/weights",
            "CACHE_URL": "redis://cache.example:6379/1",
        }
    )
    assert seen["db"] == "django.db.backends.postgresql" and seen["name"] == "studies"
    assert seen["broker"] == "redis://cache.example:6379/0"
    assert seen["hosts"] == ["studies.example.org", "localhost"]
    assert seen["device"] == "cuda" and seen["weights"] == "/srv/weights"
    assert seen["precision"] == "fp16" and seen["compile"] is True
    assert seen["sessions"] == "django.contrib.sessions.backends.cached_db"


def test_missing_secret_key_is_a_clear_error(tmp_path):
    code = "import django; django.setup()"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment_with({"READERSTUDY_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}),
    )
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


def manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """`manage.py ARGS` with the production settings module and only `env` set."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environment_with(env),
        timeout=300,
    )


def test_production_settings_pass_the_deployment_checks(tmp_path):
    """`manage.py check --deploy` with only what an operator sets: no warning at all."""
    result = manage(
        ["check", "--deploy", "--fail-level", "WARNING"],
        {
            "DJANGO_SECRET_KEY": "k3y-" + "x9Qz" * 16,
            "DJANGO_ALLOWED_HOSTS": "studies.example.org",
            "READERSTUDY_DATA_DIR": str(tmp_path),
            "CACHE_URL": "redis://127.0.0.1:6379/1",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_static_files_collect(tmp_path):
    """collectstatic with the production storage (hashed, compressed) succeeds on every
    vendored bundle, source-map comments included."""
    result = manage(
        ["collectstatic", "--noinput", "-v", "0"],
        {"DJANGO_SECRET_KEY": "x", "READERSTUDY_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((tmp_path / "staticfiles" / "staticfiles.json").read_text())
    assert "js/dashboard.js" in manifest["paths"] and "css/app.css" in manifest["paths"]
    assert (
        (tmp_path / "staticfiles" / manifest["paths"]["js/dashboard.js"])
        .with_suffix(".js.gz")
        .exists()
    )
