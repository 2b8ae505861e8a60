"""Work after commit by name: the booking services never import the Celery tasks that call them."""

import pytest

from apps.booking import tasks
from apps.core import after_commit


def test_unknown_names_fail_at_once():
    with pytest.raises(KeyError):
        after_commit.register("slot_freeed", lambda slot_id: None)
    with pytest.raises(KeyError):
        after_commit.later("slot_freeed", 1)


@pytest.mark.django_db
def test_the_booking_app_queues_a_freed_slot_in_the_transaction(
    monkeypatch, django_capture_on_commit_callbacks
):
    from apps.booking.models import FreedSlot

    asked = []
    monkeypatch.setattr(tasks.waitlist_drain_task, "delay", lambda: asked.append(1))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        after_commit.record(after_commit.SLOT_FREED, 42, 43)
        assert set(FreedSlot.objects.values_list("slot_id", flat=True)) == {42, 43}  # at once
        assert asked == []  # the drain is asked for only after the commit
    assert len(callbacks) == 1 and asked == [1]


@pytest.mark.django_db
def test_the_booking_app_registers_the_waiting_list_work(monkeypatch, django_capture_on_commit_callbacks):
    offered = []
    monkeypatch.setattr(tasks.waitlist_allocate_registration_task, "delay", offered.append)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        after_commit.later(after_commit.WAITING_ENTRY_CREATED, 42)
        assert offered == []  # not before the commit
    assert len(callbacks) == 1 and offered == [42]


def test_the_services_do_not_import_the_tasks():
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2] / "apps"
    sources = [*root.joinpath("booking", "services").glob("*.py"), root / "scheduling" / "services.py"]
    importing = re.compile(r"^\s*(from\s+\S*tasks\s+import|import\s+\S*tasks)", re.MULTILINE)
    assert sources and not [p.name for p in sources if importing.search(p.read_text(encoding="utf-8"))]
