"""The session store's hand-written read (apps/core/sessions.py) against Django's own (issue 19)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore as DjangoStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from apps.core.sessions import SessionStore

pytestmark = pytest.mark.django_db


def test_the_sessions_are_read_as_django_reads_them():
    assert settings.SESSION_ENGINE == "apps.core.sessions"
    live = DjangoStore()
    live.update({"_auth_user_id": "7", "cart": [1, 2], "when": "2027-01-01"})
    live.create()
    expired = DjangoStore()
    expired["x"] = 1
    expired.create()
    Session.objects.filter(session_key=expired.session_key).update(
        expire_date=timezone.now() - dt.timedelta(seconds=1)
    )
    for key in (live.session_key, expired.session_key, "no-such-session-key-0000000000000", None):
        ours, django = SessionStore(key), DjangoStore(key)
        assert ours.load() == django.load(), key
        assert ours.session_key == django.session_key, key
    assert SessionStore(live.session_key).load() == {
        "_auth_user_id": "7",
        "cart": [1, 2],
        "when": "2027-01-01",
    }
    assert SessionStore(expired.session_key).load() == {}


def test_a_session_written_by_this_store_is_read_back_and_ended(client, django_user_model):
    user = django_user_model.objects.create_user("someone")
    client.force_login(user)
    key = client.session.session_key
    assert SessionStore(key).load()["_auth_user_id"] == str(user.pk)
    client.logout()
    assert SessionStore(key).load() == {}
