"""The settlement policy is data an administrator edits, within its database bounds."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from apps.reconciliation.models import SettlementPolicy, settlement_policy
from tests.factories.staff import otp_verified

pytestmark = pytest.mark.django_db


def test_an_administrator_changes_the_emergency_threshold(client):
    admin_user = get_user_model().objects.create_superuser(
        "nfz-admin", "a@example.org", "not-used-in-prod-123"
    )
    otp_verified(client, admin_user)  # the admin asks for the second factor too
    policy, _ = SettlementPolicy.objects.get_or_create(pk=1)

    response = client.post(
        f"/admin/reconciliation/settlementpolicy/{policy.pk}/change/",
        {"settlement_window_days": "400", "emergency_share_threshold": "7.50"},
    )

    assert response.status_code == 302
    assert (
        settlement_policy().settlement_window_days,
        str(settlement_policy().emergency_share_threshold),
    ) == (
        400,
        "7.50",
    )


def test_the_database_refuses_a_threshold_above_100_percent():
    with pytest.raises(IntegrityError), transaction.atomic():
        SettlementPolicy.objects.create(settlement_window_days=30, emergency_share_threshold=150)
