import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readerstudy.config.settings")
application = get_wsgi_application()
# Import every view (and with them numpy, pandas, torch) while the worker boots, not during
# the first request it serves: otherwise the first readers after a deploy or a worker restart
# wait seconds (bench-load saw 10 s).
get_resolver().resolve("/")
