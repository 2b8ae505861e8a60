"""The OAuth 2 token endpoint (client credentials only), bound to ApiClient expiry, revocation, scopes.

The protocol is django-oauth-toolkit's; we only narrow it: a DOT application that is not a live
credential of a live ApiClient cannot obtain a token, and a token can carry only the client's scopes.

Only the client-credentials grant exists (oauthlib's `BackendApplicationServer`): the password grant
of the default server checked a staff password before it checked the grant type, so anyone holding
one facility's secret could test staff passwords (issue 15). Every request is counted per client id
and per address before any secret is hashed, and refusals are logged without secrets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.views import TokenView
from oauthlib.oauth2 import BackendApplicationServer

from .models import ApiCredential
from .ratelimit import window_hit

security_log = logging.getLogger("cer.security")


def _credential(request: Any) -> ApiCredential | None:
    cached = getattr(request, "_cer_credential", None)
    if cached is not None:
        return cached
    if request.client is None:
        return None
    credential = (
        ApiCredential.objects.select_related("client").filter(application_id=request.client.pk).first()
    )
    request._cer_credential = credential
    return credential


class ApiClientOAuth2Validator(OAuth2Validator):
    def authenticate_client(self, request: Any, *args: Any, **kwargs: Any) -> bool:
        if not super().authenticate_client(request, *args, **kwargs):
            return False
        credential = _credential(request)
        return credential is not None and credential.is_active()

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs) -> bool:
        return grant_type == "client_credentials" and super().validate_grant_type(
            client_id, grant_type, client, request, *args, **kwargs
        )

    def validate_user(self, username, password, client, request, *args, **kwargs) -> bool:
        return False  # no grant here signs a person in (the server has no password grant either)

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs) -> bool:
        credential = _credential(request)
        return credential is not None and set(scopes) <= set(credential.client.scopes)

    def get_default_scopes(self, client_id, request, *args, **kwargs) -> list[str]:
        credential = _credential(request)
        return list(credential.client.scopes) if credential else []


def _printable(text: str, limit: int = 80) -> str:
    """Caller-supplied text for a log line: bounded, one line, ASCII (no log injection)."""
    return text[:limit].encode("ascii", "backslashreplace").decode("ascii").replace("\n", "\\n")


def token_request_client_id(request: HttpRequest) -> str:
    """The client id a token request names (Basic authorization or the form), never the secret."""
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.split(":", 1)[0]
    return str(request.POST.get("client_id", ""))


def _address(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR", ""))


def _throttled(request: HttpRequest, client_id: str) -> int:
    """Seconds to wait when this request is over a limit (per named client, per address); else 0."""
    window = max(1, int(settings.CER_TOKEN_RATE_WINDOW))
    digest = hashlib.sha256(client_id.encode("utf-8", "backslashreplace")).hexdigest()[:32]
    checks = [
        (f"cer:token-rate:client:{digest}", int(settings.CER_TOKEN_RATE_LIMIT_CLIENT)),
        (f"cer:token-rate:addr:{_address(request)}", int(settings.CER_TOKEN_RATE_LIMIT_ADDRESS)),
    ]
    wait = 0
    for key, limit in checks:
        state = window_hit(key=key, limit=limit, window=window)
        if state.exceeded:
            wait = max(wait, state.reset)
    return wait


@method_decorator(csrf_exempt, name="dispatch")
class ApiTokenView(TokenView):
    validator_class = ApiClientOAuth2Validator
    server_class = BackendApplicationServer

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        client_id = token_request_client_id(request)
        wait = _throttled(request, client_id)
        if wait:
            response: HttpResponse = JsonResponse(
                {"error": "slow_down", "error_description": "Too many token requests; retry later."},
                status=429,
            )
            response["Retry-After"] = str(wait)
        else:
            response = self.authorization_flow_token_response(request)
        if response.status_code != 200:
            self._log_refusal(request, client_id, response)
        return response

    @staticmethod
    def _log_refusal(request: HttpRequest, client_id: str, response: HttpResponse) -> None:
        try:
            error = str(json.loads(response.content).get("error", ""))
        except (ValueError, AttributeError):
            error = ""
        security_log.warning(
            "token refused: error=%s status=%s client_id=%s address=%s grant_type=%s",
            _printable(error),
            response.status_code,
            _printable(client_id),
            _printable(_address(request)),
            _printable(str(request.POST.get("grant_type", ""))),
        )
