"""Messages to patients (in-app, e-mail, SMS), each logged with its delivery state and time-to-live.

A message is created once per idempotency `key` (kind + appointment + channel, for example
`reminder:7:123:sms`): a job that runs twice, or on two workers at once, inserts the row once and
only the worker whose conditional UPDATE claims it sends it. `expires_at` is the time-to-live: a
message still pending after it (an outage, a queue backlog) is marked expired, never sent late.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Message(models.Model):
    class Channel(models.TextChoices):
        IN_APP = "in_app", "in-app"
        EMAIL = "email", "e-mail"
        SMS = "sms", "SMS"

    class State(models.TextChoices):
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"  # the last attempt failed; retried while attempts remain
        EXPIRED = "expired", "expired"  # its time-to-live passed before it could be sent
        SKIPPED = "skipped", "skipped"  # no longer relevant (e.g. the booking was cancelled)

    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=40)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="messages")
    # The database's foreign key is (appointment_id, appointment_start) -> the appointments' (id, start),
    # declared in apps/booking/partitions.py; the copy of the start is written by a trigger there.
    appointment = models.ForeignKey(
        "booking.Appointment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    appointment_start = models.DateTimeField(null=True, blank=True, editable=False)
    # Only messages about a live booking (reminders) are skipped once the booking is no longer live.
    requires_live_appointment = models.BooleanField(default=False)
    to = models.CharField(max_length=254, blank=True)  # e-mail address or phone number
    language = models.CharField(max_length=2, default="pl")
    subject = models.CharField(max_length=200)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True)
    provider_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["patient", "channel", "-created_at"], name="message_inbox"),
            models.Index(
                fields=["expires_at"], name="message_unsent", condition=Q(state__in=["pending", "failed"])
            ),
            models.Index(
                fields=["to", "-created_at"], name="message_by_recipient", condition=Q(channel="sms")
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} {self.kind} {self.channel} {self.state}"


class ConsumerCursor(models.Model):
    """How far a consumer of the outbox has read: (txid, id) of the last event it handled."""

    name = models.CharField(max_length=40, primary_key=True)
    txid = models.BigIntegerField(default=0)
    event_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class InboundSms(models.Model):
    """An SMS reply received from the gateway; the provider's id makes a redelivered webhook harmless."""

    id = models.BigAutoField(primary_key=True)
    provider_id = models.CharField(max_length=100, unique=True)
    sender = models.CharField(max_length=20)
    text = models.CharField(max_length=500)
    received_at = models.DateTimeField(auto_now_add=True)
    # As `Message.appointment`: the key (appointment_id, appointment_start), the copy by trigger.
    appointment = models.ForeignKey(
        "booking.Appointment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    appointment_start = models.DateTimeField(null=True, blank=True, editable=False)
    outcome = models.CharField(max_length=32, blank=True)


class ComplianceCheck(models.Model):
    """Daily result per (facility, service) under contract: is the published schedule long enough?

    Facilities must publish schedules at least `Service.min_horizon_days` ahead (catalogue data);
    NFZ may fine those that do not (DESIGN.md section 2). The staff pages read this table.
    """

    id = models.BigAutoField(primary_key=True)
    day = models.DateField()
    facility = models.ForeignKey("catalog.Facility", on_delete=models.CASCADE, related_name="+")
    service = models.ForeignKey("catalog.Service", on_delete=models.CASCADE, related_name="+")
    published_until = models.DateField(null=True, blank=True)
    published_days = models.IntegerField()
    required_days = models.PositiveSmallIntegerField()
    compliant = models.BooleanField()
    checked_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day", "facility_id", "service_id"]
        constraints = [
            models.UniqueConstraint(fields=["day", "facility", "service"], name="compliance_once_per_day"),
        ]
        indexes = [models.Index(fields=["day", "compliant"], name="compliance_by_day")]
