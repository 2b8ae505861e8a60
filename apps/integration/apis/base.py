"""The base of every integration API operation: authentication, facility scope, scopes, rate limit,
Idempotency-Key, problem+json and the OpenAPI error responses. One subclass per operation."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.drainage import get_override
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.models import AccessLog
from apps.audit.services import access_rows
from apps.core.api_errors import problem
from apps.core.errors import MESSAGES, DomainError, api_codes, text
from apps.core.queries import insert_rows

from ..auth import ApiClientAuthentication, ApiPrincipal, HasOperationScope
from ..idempotency import (
    HEADER,
    idempotency_claim_reading,
    idempotency_key_validate,
    idempotency_known,
    idempotency_store,
    request_hash,
)
from ..models import IdempotencyRecord
from ..ratelimit import RateState, rate_limit_for_request
from ..selectors import FacilityScope

WRITE_METHODS = ("POST", "PUT", "PATCH")
SerializerClass = TypeVar("SerializerClass", bound=type[serializers.Serializer])


class _Replay(Exception):
    def __init__(self, record: IdempotencyRecord) -> None:
        self.record = record


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details with a stable machine-readable `code`."""

    type = serializers.URLField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    code = serializers.CharField()
    detail = serializers.CharField()
    # Only describes the schema (never validates input), so shadowing `Serializer.errors` is harmless.
    errors = serializers.JSONField(required=False)  # type: ignore[assignment]
    params = serializers.DictField(child=serializers.CharField(), required=False)


def _problem_example(status: int, code: str, title: str = "") -> OpenApiExample:
    return OpenApiExample(
        code,
        value={**problem(status, code), "instance": "5f0c3e7aa1b94c0e9d2b7c1f3e4a5b6c"},
        response_only=True,
        status_codes=[str(status)],
        media_type="application/problem+json",
    )


STATUS_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed JSON, invalid or unknown fields, invalid cursor or PESEL",
    401: "No, invalid, expired or revoked credentials",
    403: "The token lacks the scope this operation needs",
    404: "Not found in your facility (ids of other facilities are never visible)",
    409: "Refused by a booking rule (slot taken, state, overlap...)",
    412: "If-Match does not match the current ETag",
    413: "Request body too large",
    415: "Content-Type must be application/json",
    422: "Idempotency-Key reused with a different request",
    428: "If-Match is required",
    429: "Rate limit exceeded; see Retry-After and the RateLimit header",
}
# Codes the framework answers with on every operation that declares the status.
PROTOCOL_CODES: dict[int, tuple[str, ...]] = {
    400: ("validation_error", "malformed_request", "invalid_idempotency_key"),
    401: ("not_authenticated", "authentication_failed"),
    403: ("forbidden",),
    404: ("not_found",),
    409: ("idempotency_in_progress",),
    412: ("precondition_failed",),
    413: ("payload_too_large",),
    415: ("unsupported_media_type",),
    422: ("idempotency_key_reused",),
    428: ("precondition_required",),
    429: ("rate_limited",),
}


def problem_codes(status: int, codes: tuple[str, ...] | None) -> list[str]:
    """The codes an operation may answer with `status`: the framework's, then its own (all the API's
    codes of that status when the operation does not name them)."""
    own = api_codes() if codes is None else codes
    listed = [*PROTOCOL_CODES.get(status, ()), *(c for c in own if MESSAGES[c][0] == status)]
    return list(dict.fromkeys(listed))


def problem_response_doc(status: int, codes: tuple[str, ...] | None = None) -> OpenApiResponse:
    listed = problem_codes(status, codes)
    links = ", ".join(f"[`{c}`](https://cer.nfz.gov.pl/problems/{c})" for c in listed)
    return OpenApiResponse(
        ProblemSerializer,
        f"{STATUS_DESCRIPTIONS.get(status, 'Refused')}. Codes: {links} (docs/errors.md).",
        examples=[_problem_example(status, code) for code in listed[:1]],
    )


PROBLEMS: dict[int, OpenApiResponse] = {
    status: problem_response_doc(status) for status in STATUS_DESCRIPTIONS
}
READ_ERRORS = (400, 401, 403, 404, 429)
WRITE_ERRORS = (400, 401, 403, 404, 409, 413, 415, 422, 429)

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    HEADER,
    str,
    OpenApiParameter.HEADER,
    description="Any unique string (e.g. a UUID). A retry with the same key returns the first response.",
)


def responses(
    ok: dict[int, Any], errors: tuple[int, ...], codes: tuple[str, ...] | None = None
) -> dict[Any, Any]:
    """Success bodies as JSON, every error as application/problem+json with the codes it may carry
    (`codes`: the operation's own, from apps/core/errors.py)."""
    for code in codes or ():
        if code not in MESSAGES:
            raise KeyError(f"undeclared error code {code!r}")
    problems = {
        (status, "application/problem+json"): problem_response_doc(status, codes) for status in errors
    }
    return {**{(status, "application/json"): body for status, body in ok.items()}, **problems}


def echo_safe(text: str, limit: int = 40) -> str:
    """Client text quoted back in an answer: valid JSON allows lone surrogates ("\\ud800") that
    cannot be encoded as UTF-8, so they are escaped rather than failing the response with a 500."""
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


# Dates from outside are bounded (issue 15): year 1 or 9999 overflowed the day arithmetic (a 500), and
# PostgreSQL keeps UTC offsets only up to +/-15:59.
DATE_BOUNDS = (dt.date(1900, 1, 1), dt.date(2200, 12, 31))
MAX_UTC_OFFSET = dt.timedelta(hours=15, minutes=59)


def date_in_bounds(value: dt.date) -> dt.date:
    if not DATE_BOUNDS[0] <= value <= DATE_BOUNDS[1]:
        raise serializers.ValidationError(
            text("date_bounds", low=DATE_BOUNDS[0].isoformat(), high=DATE_BOUNDS[1].isoformat())
        )
    return value


def datetime_in_bounds(value: dt.datetime) -> dt.datetime:
    offset = value.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        raise serializers.ValidationError(text("utc_offset"))
    date_in_bounds(value.date())
    return value


class BoundedDateField(serializers.DateField):
    """A DateField for input: refuses days outside DATE_BOUNDS with a 400."""

    def to_internal_value(self, value: Any) -> dt.date:
        return date_in_bounds(super().to_internal_value(value))


class StrictSerializer(serializers.Serializer):
    """Input serializers refuse fields they do not know (a typo must not be silently ignored)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {echo_safe(name): [text("unknown_field")] for name in unknown}
                )
        return super().to_internal_value(data)


# --- conditional requests (RFC 9110 section 13) -------------------------------------------------------


def etag(version: int) -> str:
    """A strong entity tag: the row's version, which every change increments."""
    return f'"{version}"'


def _entity_tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def if_match_check(request: Any, version: int, *, required: bool) -> None:
    """If-Match with the strong comparison (13.1.1): `*` matches any current representation, a weak
    tag (W/"2") never matches. Absent: 428 where the operation requires it, else nothing to check."""
    header = request.headers.get("If-Match")
    if header is None:
        if required:
            raise DomainError("precondition_required")
        return
    if header.strip() == "*":
        return
    if etag(version) not in [tag for tag in _entity_tags(header) if not tag.startswith("W/")]:
        raise DomainError("precondition_failed")


def not_modified(request: Any, version: int) -> Response | None:
    """If-None-Match on a read, with the weak comparison (13.1.2): 304 and the ETag when it matches."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return None
    tags = [tag.removeprefix("W/") for tag in _entity_tags(header)]
    if header.strip() != "*" and etag(version) not in tags:
        return None
    return Response(status=304, headers={"ETag": etag(version)})


NOT_MODIFIED = OpenApiResponse(
    description="Not Modified: the ETag in If-None-Match is still current (no body)"
)
IF_MATCH_DESCRIPTION = (
    "An ETag as last read (strong comparison: a weak W/ tag never matches), or `*`. The change is refused "
    "with 412 if the resource changed since."
)
IF_NONE_MATCH_PARAMETER = OpenApiParameter(
    "If-None-Match",
    str,
    OpenApiParameter.HEADER,
    description="The ETag you hold: 304 Not Modified (no body) while it is still current.",
)


class PageQuery(serializers.Serializer):
    """Cursor pagination of every list: send `next` of the previous page as `cursor`."""

    cursor = serializers.CharField(required=False, max_length=200, help_text="`next` of the previous page")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)


# --- examples (issue 17: every request and answer of the schema shown by example) ---------------------


def example(value: Any, name: str = "example") -> Callable[[SerializerClass], SerializerClass]:
    """The serializer's own example, shown for every request or answer it is the body of, unless the
    operation names its own (`IntegrationAutoSchema._get_examples`). One example per shape, kept next to
    the shape; tests/api_docs/test_schema_examples.py checks each against the schema."""
    return extend_schema_serializer(examples=[OpenApiExample(name, value=value)])


NEXT_CURSOR_EXAMPLE = "WzQ1Nl0"


def page_example(item: Any) -> dict[str, Any]:
    """One page of a list: the item, and the cursor of the next page."""
    return {"results": [item], "next": NEXT_CURSOR_EXAMPLE}


def example_of(serializer: type[serializers.Serializer]) -> Any:
    """The value of a serializer's own example (to compose a bigger one from it)."""
    return get_override(serializer, "examples")[0].value


_PAGES: dict[str, type[serializers.Serializer]] = {}


def page_of(item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The schema of one page of `item`: `results` and the `next` cursor (null on the last page)."""
    name = item.__name__.removesuffix("Output") + "Page"
    if name not in _PAGES:
        _PAGES[name] = type(
            name,
            (serializers.Serializer,),
            {
                "__doc__": f"One page of {item.__name__.removesuffix('Output')} (cursor pagination).",
                "results": item(many=True),
                "next": serializers.CharField(allow_null=True, help_text="The cursor of the next page"),
            },
        )
        examples = get_override(item, "examples", [])
        if examples:
            _PAGES[name] = example(page_example(examples[0].value))(_PAGES[name])
    return _PAGES[name]


def paginated(request: Any, qs: Any, output: type[serializers.Serializer], **page: Any) -> Response:
    from ..selectors import id_page

    query = PageQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    rows, next_cursor = id_page(qs, query.validated_data.get("cursor"), query.validated_data["limit"], **page)
    return Response({"results": output(rows, many=True).data, "next": next_cursor})


class FacilityApi(APIView):
    """Base class: subclasses set `required_scope` and implement exactly one HTTP method."""

    authentication_classes = [ApiClientAuthentication]
    permission_classes = [HasOperationScope]
    required_scope: str | None = None
    # A deprecated operation (docs/versioning.md) says so on every answer: Deprecation from this day,
    # Sunset on the day it stops answering (at least 12 months later).
    deprecated_on: dt.date | None = None
    sunset_on: dt.date | None = None

    principal: ApiPrincipal
    scope: FacilityScope
    _rate: RateState | None = None
    _idempotency_id: int | None = None
    _atomic: Any = None  # the write request's transaction (`_transaction_begin`)
    _access_rows: list[AccessLog]  # the answer's access log, written with the stored answer (`dispatch`)
    claim_row: tuple[Any, ...] | None = None  # what `claim_read` found, read with the key's claim

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication and scope check
        self.principal = request.user
        self.scope = FacilityScope(self.principal.facility)
        self._rate = rate_limit_for_request(request, client_id=self.principal.client.pk)
        if self._rate.exceeded:
            raise DomainError(
                "rate_limited",
                limit=self._rate.limit,
                reset=self._rate.reset,
                headers={"Retry-After": str(self._rate.reset)},
            )
        key = request.headers.get(HEADER)
        writes = key is not None and request.method in WRITE_METHODS
        if writes:
            key = idempotency_key_validate(str(key))
        refusal: Exception | None = None
        try:
            self.refuse_early(request)
        except (DomainError, APIException) as exc:
            # A retry of a request that already ran is answered as the first time (below), whatever
            # the state now; anything else refused here ends before the key is claimed.
            if not writes or not idempotency_known(client=self.principal.client, key=str(key)):
                raise
            refusal = exc
        if request.method in WRITE_METHODS:
            self._transaction_begin()
        if writes:
            path = request.get_full_path()
            digest = request_hash(method=request.method, path=path, body=request.body)
            record_id, first, self.claim_row = idempotency_claim_reading(
                client=self.principal.client,
                key=str(key),
                method=request.method,
                path=path,
                digest=digest,
                read=self.claim_read(request) if refusal is None else None,
            )
            if first is not None:
                raise _Replay(first)
            self._idempotency_id = record_id
        if refusal is not None:
            raise refusal  # the key's record went in between: the refusal stands, and is stored

    def refuse_early(self, request: Any) -> None:
        """A refusal that can be decided from committed state alone, before the request claims its
        Idempotency-Key and writes anything (nothing is stored, so a retry is simply re-checked)."""

    def claim_read(self, request: Any) -> tuple[str, list[Any]] | None:
        """The operation's first read once its key is claimed, run in the claim's statement (one round
        trip less): a SELECT of at most one row with `%s` parameters. Its row is `claim_row` (None
        without a key, where the operation must read as usual)."""
        return None

    def access_record(self, request: Any, patient_ids: Iterable[int]) -> None:
        """Record in the append-only access log that this answer carries these patients' personal data,
        in the request's transaction. A write request with an Idempotency-Key writes the rows with the
        stored answer, in the same statement (they commit together either way); any other, now."""
        rows = access_rows(
            actor_type="api_client",
            actor_id=self.principal.actor_id,
            facility_id=self.principal.facility.pk,
            patient_ids=patient_ids,
            action=f"{request.method} {request.path}"[:100],
            purpose="facility integration API",
        )
        if self._atomic is not None and self._idempotency_id is not None:
            self._access_rows += rows
        else:
            insert_rows(rows)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, _Replay):
            record = exc.record
            headers = {k: v for k, v in record.response_headers.items() if k != "Content-Type"}
            headers["Idempotent-Replayed"] = "true"
            response = Response(record.response_body, status=record.status_code, headers=headers)
            if "Content-Type" in record.response_headers:
                response.content_type = record.response_headers["Content-Type"]
            return response
        return super().handle_exception(exc)

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.deprecated_on is not None:  # docs/versioning.md: RFC 9745 and RFC 8594
            response["Deprecation"] = (
                f"@{int(dt.datetime.combine(self.deprecated_on, dt.time(), dt.UTC).timestamp())}"
            )
            response["Link"] = '<https://cer.nfz.gov.pl/docs/changelog>; rel="deprecation"'
            if self.sunset_on is not None:
                response["Sunset"] = http_date(
                    dt.datetime.combine(self.sunset_on, dt.time(), dt.UTC).timestamp()
                )
        if self._rate is not None:
            for name, value in self._rate.headers().items():
                response[name] = value
        return response

    def _transaction_begin(self) -> None:
        """The write request's transaction, begun once its early refusal has passed (`initial`), so a
        request refused from committed state alone (most lost races) pays no BEGIN and COMMIT."""
        atomic = transaction.atomic()
        atomic.__enter__()
        self._atomic = atomic

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.method not in WRITE_METHODS:
            return super().dispatch(request, *args, **kwargs)
        # One transaction per write request: the key's claim, the change, its outbox events and the
        # stored idempotent response commit together (or not at all). It begins in `initial`, before the
        # claim; what runs earlier (authentication, the rate limit, the early refusal) writes nothing.
        self._atomic, self._access_rows = None, []
        try:
            response = cast(Response, super().dispatch(request, *args, **kwargs))
            if self._atomic is not None:
                if response.status_code >= 500 or transaction.get_rollback():
                    transaction.set_rollback(True)
                elif self._idempotency_id is not None:
                    response.render()
                    headers = dict(response.items())
                    idempotency_store(
                        record_id=self._idempotency_id,
                        status_code=response.status_code,
                        content=response.content,
                        headers=headers,
                        rows=self._access_rows,
                    )
        except BaseException:
            if self._atomic is not None:
                self._atomic.__exit__(*sys.exc_info())
            raise
        if self._atomic is not None:
            self._atomic.__exit__(None, None, None)
        return response


def by_method(**operations: type[APIView]) -> Any:
    """One URL, one API class per HTTP method (STYLE.md rule 3). The per-operation patterns are also
    listed (unreachable, after this one) so drf-spectacular documents each class.

    HEAD is the GET without its body (same status and headers, rate limit and audit included); OPTIONS
    answers 204 with `Allow`, which a 405 carries too (RFC 9110 9.3.2, 9.3.7, 15.5.6)."""
    views = {method.upper(): cls.as_view() for method, cls in operations.items()}
    allowed = {*views, "OPTIONS", *(["HEAD"] if "GET" in views else [])}
    allow = ", ".join(sorted(allowed))

    @csrf_exempt
    def view(request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.method == "OPTIONS":
            return HttpResponse(status=204, headers={"Allow": allow})
        handler = views.get("GET" if request.method == "HEAD" else request.method)
        if handler is None:
            refusal = JsonResponse(problem(405, "method_not_allowed"), status=405)
            refusal["Content-Type"] = "application/problem+json"
            refusal["Allow"] = allow
            return refusal
        response = handler(request, *args, **kwargs)
        if request.method == "HEAD":
            if hasattr(response, "render"):
                response.render()
            length = len(response.content)
            response.content = b""
            response["Content-Length"] = str(length)
        return response

    return view
