"""Staff sessions that have passed the second factor (django-otp), for tests of pages behind it."""

from __future__ import annotations

from typing import Any

from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice


def otp_verified(client: Any, user: Any) -> Any:
    """Sign `user` in on the test `client` with a confirmed authenticator verified in the session."""
    client.force_login(user)
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or TOTPDevice.objects.create(
        user=user, name="authenticator", confirmed=True
    )
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client
