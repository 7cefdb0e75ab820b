"""Django project configuration (settings, URLs, WSGI, Celery) of the reader-study service."""

from readerstudy.config.celery import app as celery_app

__all__ = ["celery_app"]
