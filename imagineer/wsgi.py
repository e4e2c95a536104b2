"""WSGI entry point (gunicorn imagineer.wsgi). Refuses to serve with an unsafe production config."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imagineer.settings")

application = get_wsgi_application()

from imagineer.core.checks import refuse_unsafe_production  # noqa: E402

refuse_unsafe_production()
