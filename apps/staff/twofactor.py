"""Staff second factor (issue 15): TOTP (RFC 6238) through django-otp, with one-time recovery codes
(django-otp's static tokens). Password lockout is django-axes' (settings), session limits are
`apps.core.middleware.SessionLimitsMiddleware`.

A staff user without a confirmed authenticator is sent to set one up after the password; the
authenticator counts once a code from it has been entered, and ten recovery codes are shown once.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django_otp import login as otp_login
from django_otp import user_has_device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

RECOVERY_CODES = 10
TOTP_NAME = "authenticator"
RECOVERY_NAME = "recovery"


def staff_needs_setup(*, user: Any) -> bool:
    return not user_has_device(user, confirmed=True)


def totp_device_pending(*, user: Any) -> TOTPDevice:
    """The user's unconfirmed authenticator (created on first call; a new key until confirmed)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=False)


@transaction.atomic
def totp_device_confirm(*, request: Any, token: str) -> list[str] | None:
    """Confirm the pending authenticator with a code from it: returns the new recovery codes (shown
    once) and marks the session verified, or None when the code does not match."""
    user = request.user
    device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).first()
    if device is None or not device.verify_token(token.strip().replace(" ", "")):
        return None
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    codes = recovery_codes_issue(user=user)
    otp_login(request, device)
    return codes


@transaction.atomic
def recovery_codes_issue(*, user: Any) -> list[str]:
    """Ten new single-use recovery codes (the old ones stop working)."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def staff_otp_verify(*, request: Any, token: str) -> bool:
    """Check a TOTP or recovery code of the signed-in user; on success the session is verified.
    django-otp throttles each device after failures (exponential delay)."""
    token = token.strip().replace(" ", "")
    for model in (TOTPDevice, StaticDevice):
        for device in model.objects.filter(user=request.user, confirmed=True):
            if device.verify_is_allowed()[0] and device.verify_token(token):
                otp_login(request, device)
                return True
    return False
