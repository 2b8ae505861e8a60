"""The OpenAPI generator of the integration API: each operation's own description (never a base
class's docstring) with its scope, and the response headers every answer carries."""

from __future__ import annotations

from typing import Any

from drf_spectacular.drainage import get_override
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_examples_list, is_list_serializer, is_serializer

STRING = {"type": "string"}
COMMON_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "schema": STRING,
        "description": "Yours if you sent a plain one (up to 64 of A-Z a-z 0-9 . _ : -), else made by CeR; "
        "also the problem's `instance` and the events' `request_id`",
    },
}
RATE_HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit-Policy": {
        "schema": STRING,
        "description": 'Quota per window (draft-ietf-httpapi-ratelimit-headers): `"client";q=600;w=60`',
    },
    "RateLimit": {
        "schema": STRING,
        "description": 'Remaining requests and seconds to the reset: `"client";r=599;t=42`',
    },
}
RETRY_AFTER = {
    "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying"}
}
ETAG = {
    "ETag": {
        "schema": STRING,
        "description": 'Strong entity tag (`"<version>"`) for If-Match / If-None-Match',
    }
}
LOCATION = {"Location": {"schema": STRING, "description": "The created resource"}}
REPLAYED = {
    "Idempotent-Replayed": {
        "schema": {"type": "string", "enum": ["true"]},
        "description": "Present on the stored answer of a retried Idempotency-Key",
    }
}


class IntegrationAutoSchema(AutoSchema):
    def get_description(self) -> str:  # type: ignore[override]
        # inspect.getdoc walks the base classes: FacilityApi's own docstring must not describe every
        # operation. Only the operation's class (or method) speaks for it.
        own = self.view.__class__.__dict__.get("__doc__") or ""
        method = getattr(self.view, self.method.lower(), None)
        text = (getattr(method, "__doc__", None) or own).strip()
        return "\n".join(line.strip() for line in text.splitlines()).strip()

    def get_operation(self, *args: Any, **kwargs: Any) -> Any:
        operation = super().get_operation(*args, **kwargs)
        if operation is not None and getattr(self.view, "deprecated_on", None) is not None:
            operation["deprecated"] = True
        scope = getattr(self.view, "required_scope", None)
        if operation is not None and scope:  # "" (ANY_SCOPE): any authenticated facility system
            operation["description"] = f"{operation.get('description', '')}\n\nScope: `{scope}`.".strip()
        return operation

    def _get_examples(
        self,
        serializer: Any,
        direction: str,
        media_type: Any,
        status_code: Any = None,
        extras: Any = None,
    ) -> Any:
        # drf-spectacular drops a body's own example as soon as the operation names any example (even
        # one for the other direction), and keeps it only for 200/201: the body's example stands in
        # whenever the operation names none for this request or success answer.
        found = super()._get_examples(serializer, direction, media_type, status_code, extras)
        success = status_code is None or str(status_code).startswith("2")
        if (
            found
            or not success
            or media_type not in (None, "application/json")
            or not is_serializer(serializer)
        ):
            return found
        own = get_override(serializer.child if is_list_serializer(serializer) else serializer, "examples", [])
        skip = "response_only" if direction == "request" else "request_only"
        return build_examples_list([e for e in own if not getattr(e, skip)])

    def _get_response_headers_for_code(self, status_code: Any, direction: str = "response") -> dict[str, Any]:
        headers = dict(super()._get_response_headers_for_code(status_code, direction))
        if not self.path.startswith("/api/v1/"):
            return headers
        code = str(status_code)
        headers.update(COMMON_HEADERS)
        if code not in ("401", "403"):  # authentication and scope are checked before the rate limit
            headers.update(RATE_HEADERS)
        if code in ("429", "503"):
            headers.update(RETRY_AFTER)
        success = code.startswith("2") or code == "304"
        if success and getattr(self.view, "sends_etag", False):
            headers.update(ETAG)
        if code == "201" and getattr(self.view, "sends_location", False):
            headers.update(LOCATION)
        if (
            code.startswith(("2", "4"))
            and code not in ("401", "403")
            and self.method in ("POST", "PUT", "PATCH")
        ):
            headers.update(REPLAYED)
        return headers
