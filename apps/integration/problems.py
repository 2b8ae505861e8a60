"""API-layer refusals that are not business rules (idempotency, preconditions, rate limits, lookups).

Business rules raise `apps.core.errors.DomainError`; these are protocol errors of the integration API.
Both end up as RFC 9457 problem+json with a stable `code` (rendered by the base API view).
"""

from __future__ import annotations

from typing import Any


class ApiProblem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str = "",
        *,
        errors: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail or title
        self.errors = errors
        self.headers = headers or {}
        super().__init__(f"{code}: {self.detail}")


def not_found(what: str) -> ApiProblem:
    return ApiProblem(404, f"{what}_not_found", f"No such {what.replace('_', ' ')} in your facility")
