from django.apps import AppConfig


class BookingConfig(AppConfig):
    name = "apps.booking"
    label = "booking"

    def ready(self) -> None:
        from django.db import transaction

        from apps.core import after_commit

        # Registers the month-partitioned appointments with apps.core.partitions, so that the daily
        # `core: month partitions` task of every process maintains them.
        from . import partitions, services, tasks  # noqa: F401

        def slots_freed(*slot_ids: int) -> None:
            # In the freeing transaction: the queue row commits with the slot; then one drain is asked
            # for (a Redis SET NX while one is already pending, not a Celery message per slot).
            services.waitlist_queue_freed(slot_ids=list(slot_ids))
            transaction.on_commit(tasks.waitlist_drain_request)

        after_commit.register(after_commit.SLOT_FREED, slots_freed)
        after_commit.register(after_commit.FREED_SLOTS_QUEUED, tasks.waitlist_drain_request)
        for name in (after_commit.WAITING_ENTRY_CREATED, after_commit.WAITING_ENTRY_CHANGED):
            after_commit.register(
                name, lambda registration_id: tasks.waitlist_allocate_registration_task.delay(registration_id)
            )
        after_commit.register(
            after_commit.SLOTS_PUBLISHED, lambda service_id: tasks.waitlist_sweep_request(service_id)
        )
