"""The OAuth 2 token endpoint (client credentials only), bound to ApiClient expiry, revocation, scopes.

The protocol is django-oauth-toolkit's; we only narrow it: a DOT application that is not a live
credential of a live ApiClient cannot obtain a token, and a token can carry only the client's scopes.
"""

from __future__ import annotations

from typing import Any

from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.views import TokenView

from .models import ApiCredential


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

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs) -> bool:
        credential = _credential(request)
        return credential is not None and set(scopes) <= set(credential.client.scopes)

    def get_default_scopes(self, client_id, request, *args, **kwargs) -> list[str]:
        credential = _credential(request)
        return list(credential.client.scopes) if credential else []


@method_decorator(csrf_exempt, name="dispatch")
class ApiTokenView(TokenView):
    validator_class = ApiClientOAuth2Validator
