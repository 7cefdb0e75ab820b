"""The URL of a configured database, for a process started to share it (a worker, a server)."""

from urllib.parse import quote


def database_url(params: dict) -> str:
    """DATABASE_URL for Django connection settings (`connection.settings_dict`), so that a
    child process opens the very database this one uses (a test database included)."""
    if params["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{params['NAME']}"
    user = quote(params["USER"] or "")
    password = f":{quote(params['PASSWORD'])}" if params.get("PASSWORD") else ""
    host = params["HOST"] or "localhost"
    return f"postgres://{user}{password}@{host}:{params['PORT'] or 5432}/{params['NAME']}"
