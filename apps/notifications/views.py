"""The inbound-SMS webhook of the SMS gateway: a patient's reply can cancel or confirm a booking.

The request is authenticated by an HMAC-SHA256 signature over `<timestamp>.<body>` with the shared
secret `settings.CER_SMS_WEBHOOK_SECRET` (header `X-CeR-Signature: sha256=<hex>`, timestamp in
`X-CeR-Timestamp`, Unix seconds, at most 5 minutes old). Without a configured secret the endpoint
does not exist (404). The gateway's message id makes a redelivery harmless.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from django.conf import settings
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.core.api_errors import PROBLEM_CONTENT_TYPE, problem

from .lifecycle import sms_inbound_handle

MAX_SKEW_SECONDS = 300


def signature(*, secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _problem(status: int, code: str) -> JsonResponse:
    return JsonResponse(problem(status, code), status=status, content_type=PROBLEM_CONTENT_TYPE)


@csrf_exempt  # a server-to-server call authenticated by its HMAC signature, not a browser form
@require_POST
def sms_inbound(request: HttpRequest) -> JsonResponse:
    secret = getattr(settings, "CER_SMS_WEBHOOK_SECRET", None)
    if not secret:
        raise Http404
    timestamp = request.headers.get("X-CeR-Timestamp", "")
    given = request.headers.get("X-CeR-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW_SECONDS:
        return _problem(401, "signature_invalid")
    if not hmac.compare_digest(given, signature(secret=secret, timestamp=timestamp, body=request.body)):
        return _problem(401, "signature_invalid")
    try:
        data = json.loads(request.body)
        provider_id, sender, text = str(data["id"]), str(data["from"]), str(data["text"])
    except (ValueError, KeyError, TypeError):
        return _problem(400, "malformed_request")
    if not provider_id or not sender:
        return _problem(400, "malformed_request")
    return JsonResponse({"outcome": sms_inbound_handle(provider_id=provider_id, sender=sender, text=text)})
