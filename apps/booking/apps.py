from django.apps import AppConfig


class BookingConfig(AppConfig):
    name = "apps.booking"
    label = "booking"

    def ready(self) -> None:
        from apps.core import after_commit

        from . import tasks

        after_commit.register(
            after_commit.SLOT_FREED, lambda slot_id: tasks.waitlist_allocate_slot_task.delay(slot_id)
        )
        after_commit.register(
            after_commit.WAITING_ENTRY_CREATED,
            lambda registration_id: tasks.waitlist_allocate_registration_task.delay(registration_id),
        )
        after_commit.register(
            after_commit.SLOTS_PUBLISHED, lambda service_id: tasks.waitlist_sweep_request(service_id)
        )
