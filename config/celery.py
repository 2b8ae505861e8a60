import os

from celery import Celery

# Production unless told otherwise, as wsgi.py and asgi.py (issue 15: a worker started without the
# variable ran with DEBUG and the console SMS gateway). `make run` chooses development.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("cer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
