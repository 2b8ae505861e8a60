"""Staff sign-in (issue 15): lockout after failed passwords (django-axes), a TOTP second factor with
single-use recovery codes (django-otp), idle and absolute session limits. The admin asks for the
second factor too."""

from __future__ import annotations

import time

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.core.middleware import AUTH_AT
from apps.staff.services import staff_group_ensure
from tests.factories.staff import otp_verified

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple 7"


@pytest.fixture
def analyst(db):
    user = User.objects.create_user("analyst", password=PASSWORD)
    user.groups.add(staff_group_ensure())
    return user


def _password(client: Client, password: str = PASSWORD):
    return client.post(reverse("staff:login"), {"username": "analyst", "password": password})


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def test_after_five_wrong_passwords_the_right_one_is_refused_too(analyst):
    client = Client(REMOTE_ADDR="127.0.0.20")
    answers = [_password(client, "wrong password").status_code for _ in range(5)]
    assert answers == [200, 200, 200, 200, 429]  # the form again, then locked
    locked = _password(client, PASSWORD)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    other_address = Client(REMOTE_ADDR="127.0.0.21")
    assert _password(other_address, PASSWORD).status_code == 429  # locked by user name as well


def test_the_admin_login_is_locked_out_too(analyst):
    analyst.is_staff = True
    analyst.save()
    client = Client(REMOTE_ADDR="127.0.0.22")
    for _ in range(5):
        client.post("/admin/login/", {"username": "analyst", "password": "nope", "otp_token": "000000"})
    response = client.post("/admin/login/", {"username": "analyst", "password": PASSWORD, "otp_token": "1"})
    assert response.status_code == 429


def test_the_password_alone_opens_no_staff_page(analyst):
    client = Client()
    assert _password(client)["Location"] == reverse("staff:otp_setup")
    runs = client.get(reverse("staff:runs"))
    assert runs.status_code == 302 and runs["Location"].startswith(reverse("staff:otp"))


def test_setting_up_totp_gives_ten_recovery_codes_that_each_work_once(analyst):
    client = Client()
    _password(client)
    client.get(reverse("staff:otp_setup"))
    device = TOTPDevice.objects.get(user=analyst, confirmed=False)
    assert (
        client.post(
            reverse("staff:otp_setup"), {"token": "000000" if _code(device) != "000000" else "1"}
        ).status_code
        == 200
    )
    with time_machine.travel(time.time() + 5, tick=False):  # django-otp throttles after a failure
        confirmed = client.post(reverse("staff:otp_setup"), {"token": _code(device)})
    codes = confirmed.context["codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert client.get(reverse("staff:runs")).status_code == 200

    second = Client()
    assert _password(second)["Location"] == reverse("staff:otp")
    assert second.post(reverse("staff:otp"), {"token": codes[0]}).status_code == 302
    assert second.get(reverse("staff:runs")).status_code == 200
    third = Client()
    _password(third)
    refused = third.post(reverse("staff:otp"), {"token": codes[0]})  # spent
    assert refused.status_code == 200 and "niepoprawny" in refused.content.decode()
    assert third.get(reverse("staff:runs")).status_code == 302


def test_a_totp_code_opens_the_staff_pages(analyst):
    device = TOTPDevice.objects.create(user=analyst, name="authenticator", confirmed=True)
    client = Client()
    _password(client)
    assert client.post(reverse("staff:otp"), {"token": _code(device)}).status_code == 302
    assert client.get(reverse("staff:runs")).status_code == 200


def test_an_idle_session_ends(analyst):
    client = otp_verified(Client(), analyst)
    assert client.get(reverse("staff:runs")).status_code == 200
    with time_machine.travel(time.time() + 16 * 60, tick=False):
        response = client.get(reverse("staff:runs"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("staff:login"))


def test_an_active_session_still_ends_after_the_absolute_limit(analyst, settings):
    client = otp_verified(Client(), analyst)
    assert client.get(reverse("staff:runs")).status_code == 200
    session = client.session
    session[AUTH_AT] = int(time.time()) - settings.CER_SESSION_ABSOLUTE_SECONDS - 1
    session.save()
    response = client.get(reverse("staff:runs"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("staff:login"))


def test_sessions_no_longer_last_two_weeks(settings):
    assert settings.SESSION_COOKIE_AGE <= 12 * 3600
