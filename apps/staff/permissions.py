"""Access to the staff pages: a logged-in Django user holding the permission (group "nfz_staff").

Anonymous visitors go to the staff log-in; a logged-in user without the permission (a patient) gets
403. Facility API clients authenticate with bearer tokens, which these session pages ignore.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.urls import reverse

STAFF_GROUP = "nfz_staff"
REVIEW = "reconciliation.review_reconciliation"
START = "reconciliation.start_reconciliation"
OVERRIDE = "reconciliation.override_verdict"
IMPORT = "reconciliation.import_visits"
EXPORT = "reconciliation.export_verdicts"


def staff_session_verified(request: HttpRequest) -> bool:
    """The password and a second factor (TOTP or a recovery code) in this session (issue 15)."""
    verified = getattr(request.user, "is_verified", None)
    return bool(verified and verified())


def staff_required(
    *perms: str,
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    required = perms or (REVIEW,)

    def decorator(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), reverse("staff:login"))
            if not request.user.is_active or not request.user.has_perms(required):
                raise PermissionDenied
            if not staff_session_verified(request):
                return redirect_to_login(request.get_full_path(), reverse("staff:otp"))
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
