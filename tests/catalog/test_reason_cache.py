"""Reason codes kept in the process (issue 19): one query loads them, later reads ask nothing, and a
change made in this process is seen at once, also when its transaction is rolled back."""

import pytest
from django.db import transaction

from apps.booking.services._transitions import reason
from apps.catalog import reason_cache
from apps.catalog.models import ReasonCode
from apps.core.errors import DomainError
from tests.factories import ReasonCodeFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Reason codes as if loaded and committed before (the test's transaction never commits)."""
    with django_capture_on_commit_callbacks(execute=True):
        ReasonCodeFactory(code="PATIENT_REQUEST", kind=ReasonCode.Kind.PATIENT_CANCEL)
        ReasonCodeFactory(code="DOCTOR_ILLNESS", kind=ReasonCode.Kind.FACILITY_CANCEL)


def test_one_query_loads_every_code_and_later_reads_ask_nothing(committed, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert reason_cache.reason_by_code("PATIENT_REQUEST").kind == ReasonCode.Kind.PATIENT_CANCEL
    with django_assert_num_queries(0):
        assert reason_cache.reason_by_code("DOCTOR_ILLNESS").code == "DOCTOR_ILLNESS"
        assert reason_cache.reason_by_code("NO_SUCH_CODE") is None
        assert reason("PATIENT_REQUEST", (ReasonCode.Kind.PATIENT_CANCEL,)).code == "PATIENT_REQUEST"
        with pytest.raises(DomainError):
            reason("PATIENT_REQUEST", (ReasonCode.Kind.FACILITY_CANCEL,))  # another kind: refused


def test_a_caller_changing_its_copy_does_not_change_the_shared_one(committed):
    reason_cache.reason_by_code("PATIENT_REQUEST").kind = ReasonCode.Kind.NO_SHOW
    assert reason_cache.reason_by_code("PATIENT_REQUEST").kind == ReasonCode.Kind.PATIENT_CANCEL


def test_a_change_is_seen_at_once_and_a_rolled_back_one_is_forgotten(committed):
    assert reason_cache.reason_by_code("LATE_ARRIVAL") is None  # loaded
    with transaction.atomic():
        ReasonCodeFactory(code="LATE_ARRIVAL", kind=ReasonCode.Kind.NO_SHOW)
        code = ReasonCode.objects.get(code="DOCTOR_ILLNESS")
        code.kind = ReasonCode.Kind.NO_SHOW
        code.save()
        assert reason_cache.reason_by_code("LATE_ARRIVAL").kind == ReasonCode.Kind.NO_SHOW
        assert reason_cache.reason_by_code("DOCTOR_ILLNESS").kind == ReasonCode.Kind.NO_SHOW
        transaction.set_rollback(True)
    assert reason_cache.reason_by_code("LATE_ARRIVAL") is None
    assert reason_cache.reason_by_code("DOCTOR_ILLNESS").kind == ReasonCode.Kind.FACILITY_CANCEL


def test_a_committed_change_is_kept_again(
    committed, django_capture_on_commit_callbacks, django_assert_num_queries
):
    with django_capture_on_commit_callbacks(execute=True):
        ReasonCode.objects.get(code="DOCTOR_ILLNESS").delete()
    with django_assert_num_queries(1):
        assert reason_cache.reason_by_code("DOCTOR_ILLNESS") is None
        assert reason_cache.reason_by_code("PATIENT_REQUEST") is not None
