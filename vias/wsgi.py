"""WSGI entry point (the ASGI app in vias.asgi is what `manage.py up` serves)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vias.settings")
application = get_wsgi_application()
