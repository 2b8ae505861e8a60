"""Operations tasks: the beat heartbeat (which beat is active, seen from a worker)."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from apps.core.beat import HEADER

logger = logging.getLogger(__name__)

PERIODIC_TASKS = [
    {
        "name": "operations: beat heartbeat",
        "task": "apps.operations.tasks.beat_heartbeat_task",
        "every_seconds": 60,
    },
]
LAST_HEARTBEAT_KEY = "operations:beat-heartbeat"


@shared_task(bind=True, time_limit=30)
def beat_heartbeat_task(self: Any) -> str:
    """Log (and keep in the cache) which beat sent this tick and which worker ran it.

    One line per tick from one beat: two beats active at once would show as two senders."""
    request = self.request
    beat = getattr(request, HEADER, None) or (getattr(request, "headers", None) or {}).get(HEADER) or ""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    logger.info("beat heartbeat", extra={"beat": beat, "worker": worker})
    cache.set(LAST_HEARTBEAT_KEY, {"beat": beat, "worker": worker, "at": timezone.now().isoformat()}, 3600)
    return beat
