"""The booking core: every state transition of slots, registrations and appointments.

Each public function is one transaction that also writes its outbox event. Races are settled by
PostgreSQL, never by a Python check followed by a write:
- a slot is claimed with a conditional UPDATE or a row lock (`SELECT ... FOR UPDATE`), so two
  patients racing for one slot get one booking and one clear refusal;
- "one live registration per patient and service", "one live appointment per slot" and "one live
  registration per e-referral" are partial unique indexes; a concurrent second attempt fails on the
  index (or, in the one booking writer `sql.booking_write`, is skipped by it: `ON CONFLICT DO
  NOTHING`) and is turned into a refusal that names the existing booking.
Every path that books, moves or allocates judges the same rules (`apps.booking.rules`).
Waiting-list work after a commit (new slots published, a new waiting entry) runs as Celery tasks
enqueued with `transaction.on_commit`, so no task ever sees uncommitted data. A freed slot is queued
in the transaction that frees it (`waitlist_queue_freed`) and offered in batches by `waitlist_drain`.

Modules by concern: `holds`, `book`, `lifecycle`, `waitlist`, `referrals` (the e-referral's life);
shared steps in `_transitions`. The public functions are re-exported here.
"""

from ._transitions import Channel, Status
from .book import appointment_book, slot_refuse_if_taken
from .holds import holds_expire, slot_hold, slot_release_hold
from .lifecycle import (
    NO_SHOW_AUTO,
    appointment_cancel_by_facility,
    appointment_cancel_by_patient,
    appointment_cancel_for_caller,
    appointment_confirm,
    appointment_record_outcome,
    appointment_reschedule,
    appointments_mark_no_show,
    appointments_release_unconfirmed,
    schedule_close_day,
    session_cancel_by_facility,
)
from .referrals import referral_number_normalise
from .waitlist import (
    allocation_release,
    waitlist_allocate_registration,
    waitlist_allocate_slot,
    waitlist_allocate_slots,
    waitlist_drain,
    waitlist_join,
    waitlist_leave,
    waitlist_preferences_update,
    waitlist_queue_freed,
    waitlist_sweep,
)

__all__ = [
    "NO_SHOW_AUTO",
    "Channel",
    "Status",
    "allocation_release",
    "appointment_book",
    "appointment_cancel_by_facility",
    "appointment_cancel_by_patient",
    "appointment_cancel_for_caller",
    "appointment_confirm",
    "appointment_record_outcome",
    "appointment_reschedule",
    "appointments_mark_no_show",
    "appointments_release_unconfirmed",
    "holds_expire",
    "referral_number_normalise",
    "schedule_close_day",
    "session_cancel_by_facility",
    "slot_hold",
    "slot_refuse_if_taken",
    "slot_release_hold",
    "waitlist_allocate_registration",
    "waitlist_allocate_slot",
    "waitlist_allocate_slots",
    "waitlist_drain",
    "waitlist_join",
    "waitlist_leave",
    "waitlist_preferences_update",
    "waitlist_queue_freed",
    "waitlist_sweep",
]
