"""Integration API v1 (mounted at /api/v1/). One API class per operation; `by_method` joins the
operations of one resource URL."""

from __future__ import annotations

from django.urls import path

from .apis import bookings, changes, reference, schedules, visits, waitlist, webhooks
from .apis.base import by_method
from .apis.ping import PingApi
from .oauth import ApiTokenView

app_name = "integration"


def resource(route: str, name: str, **operations):
    """The routing pattern, then each operation's own (never reached) pattern for the schema."""
    return [
        path(route, by_method(**operations), name=name),
        *(path(route, cls.as_view()) for cls in operations.values()),
    ]


urlpatterns = [
    path("oauth/token/", ApiTokenView.as_view(), name="token"),
    # Without its slash too: CommonMiddleware cannot redirect a POST (a 500 under DEBUG).
    path("oauth/token", ApiTokenView.as_view()),
    # The benchmarks' framework ceiling (bench/run.py): no authentication, no database, not in the schema.
    path("ping", PingApi.as_view(), name="ping"),
    *resource("services", "services", get=reference.ServiceListApi),
    *resource("reason-codes", "reason-codes", get=reference.ReasonCodeListApi),
    *resource("entitlements", "entitlements", get=reference.EntitlementListApi),
    *resource("schedules", "schedules", get=schedules.ScheduleListApi, post=schedules.ScheduleCreateApi),
    *resource(
        "schedules/<int:schedule_id>",
        "schedule",
        get=schedules.ScheduleDetailApi,
        patch=schedules.ScheduleUpdateApi,
    ),
    *resource("schedules/<int:schedule_id>/templates", "schedule-templates", put=schedules.TemplatesSetApi),
    *resource("schedules/<int:schedule_id>/slots", "schedule-slots", post=schedules.SlotsPublishApi),
    *resource(
        "schedules/<int:schedule_id>/close-day", "schedule-close-day", post=schedules.ScheduleCloseDayApi
    ),
    *resource(
        "schedules/<int:schedule_id>/cancel-session",
        "schedule-cancel-session",
        post=bookings.SessionCancelApi,
    ),
    *resource("slots", "slots", get=schedules.SlotListApi),
    *resource("slots/<int:slot_id>/block", "slot-block", post=schedules.SlotBlockApi),
    *resource("slots/<int:slot_id>/unblock", "slot-unblock", post=schedules.SlotUnblockApi),
    *resource("bookings", "bookings", get=bookings.BookingListApi, post=bookings.BookingCreateApi),
    *resource("bookings/<int:booking_id>", "booking", get=bookings.BookingDetailApi),
    *resource("bookings/<int:booking_id>/cancel", "booking-cancel", post=bookings.BookingCancelApi),
    *resource(
        "bookings/<int:booking_id>/reschedule", "booking-reschedule", post=bookings.BookingRescheduleApi
    ),
    *resource("bookings/<int:booking_id>/confirm", "booking-confirm", post=bookings.BookingConfirmApi),
    *resource("bookings/<int:booking_id>/outcome", "booking-outcome", post=bookings.BookingOutcomeApi),
    *resource("waitlist", "waitlist", post=waitlist.WaitlistJoinApi),
    *resource("waitlist/<int:entry_id>", "waitlist-entry", get=waitlist.WaitlistDetailApi),
    *resource("waitlist/<int:entry_id>/leave", "waitlist-leave", post=waitlist.WaitlistLeaveApi),
    *resource("changes", "changes", get=changes.ChangesApi),
    *resource("visits", "visits", get=visits.VisitListApi, post=visits.VisitsReportApi),
    *resource("webhooks", "webhooks", get=webhooks.WebhookListApi, post=webhooks.WebhookCreateApi),
    *resource("webhooks/<int:webhook_id>", "webhook", delete=webhooks.WebhookDeleteApi),
    *resource("webhooks/<int:webhook_id>/test", "webhook-test", post=webhooks.WebhookTestApi),
    *resource(
        "webhooks/<int:webhook_id>/deliveries", "webhook-deliveries", get=webhooks.WebhookDeliveryListApi
    ),
    *resource(
        "webhook-deliveries/<int:delivery_id>/redeliver",
        "webhook-redeliver",
        post=webhooks.WebhookRedeliverApi,
    ),
]
