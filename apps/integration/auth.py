"""Bearer-token authentication for facility systems: resolves the caller's ApiClient and facility once.

One indexed lookup (the token's SHA-256 checksum, as DOT stores it) with the credential, client and
facility joined in, kept in Redis for PRINCIPAL_CACHE_SECONDS and in the process itself (bounded,
LOCAL_MAX entries), so a facility system's requests after the first cost no database read and no
unpickling (DESIGN.md section 8: cheap authentication decides booking throughput).

Revocation stays prompt with the copy in every process: a **generation counter in Redis**
(`GENERATION_KEY`) is read on every request, in the same round trip as the rate-limit counter
(`ratelimit.rate_limit_queue`), and an entry of another generation is not used. Rotation and admin
edits (`principal_cache_forget`) and the deletion of a token by any means, revocation's included (a
`post_delete` receiver), forget the Redis entries and bump the generation, now and when they commit,
so they take effect at the next request on every web server. Every expiry is still checked on every
request against the cached timestamps. A change made any other way (raw SQL) takes effect within
twice PRINCIPAL_CACHE_SECONDS (the process copy is reloaded that often, from Redis's copy). The
copy's model instances are shared by the threads of the process: nothing may change them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from oauth2_provider.models import AccessToken
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from apps.catalog.models import Facility
from apps.core.api_errors import LOCALISED
from apps.core.cache import redis_client
from apps.core.errors import text
from apps.core.queries import one_or_none

from . import ratelimit
from .models import SCOPES, ApiClient, ApiCredential

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiPrincipal:
    """`request.user` of the integration API: the facility system, never a person."""

    client: ApiClient
    credential: ApiCredential
    facility: Facility
    scopes: frozenset[str] = field(default_factory=frozenset)
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def actor_id(self) -> str:
        return f"api_client:{self.client.pk}"


PRINCIPAL_CACHE_SECONDS = 30
GENERATION_KEY = "cer:api-principal-generation"
LOCAL_MAX = 10_000  # facility systems with a token in use, per process; the copy is emptied when full
LOCAL_SECONDS = PRINCIPAL_CACHE_SECONDS  # an entry is reloaded at least this often, bump or not
# checksum -> (generation it was loaded in, monotonic load time, token expiry, principal)
_local: dict[str, tuple[bytes | None, float, dt.datetime, ApiPrincipal]] = {}


def _generation_bump() -> None:
    redis_client().incr(GENERATION_KEY)


def principal_generation_bump() -> None:
    """Every process stops using its copies of principals: now, and again when the caller commits."""
    _generation_bump()
    transaction.on_commit(_generation_bump)


def _principal_key(checksum: str) -> str:
    return f"api-principal:{checksum}"


def _principal_load(checksum: str) -> tuple[dt.datetime, ApiPrincipal] | None:
    """(token expiry, principal) of a token, from the database; None for an unknown token."""
    token = one_or_none(
        AccessToken.objects.select_related("application__api_credential__client__facility").filter(
            token_checksum=checksum
        )
    )
    if token is None or token.application is None:
        return None
    credential = getattr(token.application, "api_credential", None)
    if credential is None:
        return None
    client = credential.client
    scopes = frozenset(token.scope.split()) & frozenset(client.scopes)
    return token.expires, ApiPrincipal(
        client=client, credential=credential, facility=client.facility, scopes=scopes
    )


def principal_cache_forget(*, client: ApiClient) -> None:
    """Forget the cached principals of every token of the client, now and again when the caller's
    transaction commits (a request reading the old rows in between cannot keep them cached)."""
    checksums = list(
        AccessToken.objects.filter(application__api_credential__client=client).values_list(
            "token_checksum", flat=True
        )
    )
    keys = [_principal_key(c) for c in checksums]
    if keys:
        cache.delete_many(keys)
        transaction.on_commit(lambda: cache.delete_many(keys))
    principal_generation_bump()


def principal_forget_deleted_token(sender: Any, instance: AccessToken, **kwargs: Any) -> None:
    """An access token deleted any way at all (DOT's admin, `cleartokens`, a cascade) stops working
    when the deletion commits, not up to PRINCIPAL_CACHE_SECONDS later (connected in apps.py)."""
    key = _principal_key(instance.token_checksum)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))
    principal_generation_bump()


class ApiClientAuthentication(BaseAuthentication):
    def authenticate(self, request: Any) -> tuple[ApiPrincipal, None] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(text("authorization_malformed"), code=LOCALISED)
        checksum = hashlib.sha256(parts[1]).hexdigest()
        local = _local.get(checksum)
        if local is not None and time.monotonic() - local[1] > LOCAL_SECONDS:
            local = None
        # One round trip: the generation, and the rate-limit hit of the client this token belongs to
        # (a token never changes client, so the hit is right even if the copy turns out stale).
        pipe = redis_client().pipeline(transaction=False)
        pipe.get(GENERATION_KEY)
        rate = ratelimit.rate_limit_queue(pipe, client_id=local[3].client.pk) if local is not None else None
        results = pipe.execute()
        generation = results[0]
        if rate is not None:
            setattr(getattr(request, "_request", request), ratelimit.REQUEST_ATTRIBUTE, rate(results[1:]))
        if local is not None and local[0] == generation:
            loaded: tuple[dt.datetime, ApiPrincipal] | None = (local[2], local[3])
        else:
            loaded = self._shared(checksum)
            if loaded is not None:
                if len(_local) >= LOCAL_MAX:
                    _local.clear()
                # The generation read before the load: a bump after it makes the next request reload.
                _local[checksum] = (generation, time.monotonic(), loaded[0], loaded[1])
            else:
                _local.pop(checksum, None)
        now = timezone.now()
        if loaded is None or loaded[0] <= now:
            raise exceptions.AuthenticationFailed(text("token_invalid"), code=LOCALISED)
        principal = loaded[1]
        if not principal.credential.is_active(now):
            raise exceptions.AuthenticationFailed(text("credentials_inactive"), code=LOCALISED)
        return principal, None

    @staticmethod
    def _shared(checksum: str) -> tuple[dt.datetime, ApiPrincipal] | None:
        """The principal from Redis (shared by the web servers), else from the database."""
        key = _principal_key(checksum)
        try:
            loaded = cache.get(key)
        except Exception:  # an entry from another release that no longer unpickles: the database decides
            logger.warning("unreadable cached API principal; loaded from the database", exc_info=True)
            loaded = None
        if loaded is None:
            loaded = _principal_load(checksum)
            if loaded is not None:
                cache.set(key, loaded, timeout=PRINCIPAL_CACHE_SECONDS)
        return loaded

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="cer-api"'


ANY_SCOPE = ""  # reference data: any authenticated facility system may read it


class HasOperationScope(BasePermission):
    """The view's `required_scope` must be in the token (and still granted to the client)."""

    message = "Your credentials do not include the scope this operation needs."
    code: str | None = None

    def has_permission(self, request: Any, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, ApiPrincipal):
            return False
        required = getattr(view, "required_scope", None)
        if required is None:
            return False
        if required == ANY_SCOPE:
            return True
        if required not in principal.scopes:
            self.message, self.code = text("scope_missing", scope=required), LOCALISED
            return False
        return True


class ApiClientAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apps.integration.auth.ApiClientAuthentication"
    name = "oauth2"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        from django.conf import settings

        described = getattr(settings, "OAUTH2_PROVIDER", {}).get("SCOPES", {})
        return {
            "type": "oauth2",
            "description": (
                "OAuth 2 client credentials issued by NFZ staff per facility system. POST "
                "grant_type=client_credentials with HTTP Basic client id/secret to the token URL; "
                "send the token as `Authorization: Bearer <token>`."
            ),
            "flows": {
                "clientCredentials": {
                    "tokenUrl": "/api/v1/oauth/token/",
                    "scopes": {s: described.get(s, s) for s in SCOPES},
                }
            },
        }

    def get_security_requirement(self, auto_schema: Any) -> dict[str, list[str]]:
        scope = getattr(auto_schema.view, "required_scope", None)
        return {self.name: [scope] if scope else []}
