"""Sending messages to patients: compose once per idempotency key, deliver once, never after the TTL.

`message_compose` renders `templates/emails/<template>-{subject,body-text,body-html,sms}.html` in the
patient's language and inserts one `Message` per channel under a unique key; delivery is enqueued
after commit. `message_deliver` claims a message with a conditional UPDATE (so two workers never
both send it), checks its time-to-live and, for reminders, that the booking is still live, then
transmits it outside any transaction and records the outcome.

A child's messages go to the contact details of the parents and legal guardians the patient registry
names (`apps.patients.services.guardians_for_notices`), in their language, each saying whom it is
about; the message stays the child's (`Message.patient`: their inbox, their appointment).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.template.exceptions import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.translation import gettext as _

from apps.booking.models import LIVE_APPOINTMENT, Appointment
from apps.operations.metrics import notifications_expired_observed
from apps.patients.models import Patient
from apps.patients.services import guardians_for_notices

from .channels import DeliveryError, channel_for
from .models import Message

logger = logging.getLogger("cer.notifications")

MAX_ATTEMPTS = 5
ALL_CHANNELS = (Message.Channel.IN_APP, Message.Channel.EMAIL, Message.Channel.SMS)
DEV_OUTBOX_KEY = "notifications:dev-outbox"


def _render(template: str, part: str, context: dict[str, Any]) -> str:
    return render_to_string(f"emails/{template}-{part}.html", context).strip()


def message_render(*, template: str, language: str, context: dict[str, Any]) -> dict[str, str]:
    """Subject, plain text, HTML and SMS text of a message in one language."""
    with translation.override(language):
        ctx = {**context, "LANGUAGE_CODE": language}
        subject = " ".join(_render(template, "subject", ctx).split())
        text = _render(template, "body-text", ctx)
        html = _render(template, "body-html", ctx)
        try:
            sms = " ".join(_render(template, "sms", ctx).split())
        except TemplateDoesNotExist:
            sms = subject
    return {"subject": subject[:200], "text": text, "html": html, "sms": sms}


def _recipient(patient: Patient, channel: str) -> str | None:
    if channel == Message.Channel.IN_APP:
        return ""
    if channel == Message.Channel.EMAIL:
        return patient.email or None
    return patient.phone or None


def message_compose(
    *,
    patient: Patient,
    kind: str,
    key: str,
    template: str,
    context: dict[str, Any],
    expires_at: dt.datetime,
    appointment: Appointment | None = None,
    requires_live_appointment: bool = False,
    channels: Iterable[str] = ALL_CHANNELS,
    deliver_later: bool = True,
) -> list[Message]:
    """Create the messages of one notification (one per channel the patient can receive).

    Idempotent: `key` + channel is unique, so composing the same notification again creates
    nothing. Returns only the messages created now. In-app messages are delivered by being stored;
    the others are handed to a Celery task after commit (unless `deliver_later` is False, when the
    caller delivers them itself, outside the transaction).
    """
    guardians = guardians_for_notices(patient=patient)
    rendered: dict[tuple[str, bool], dict[str, str]] = {}

    def parts_in(language: str, about_child: bool) -> dict[str, str]:
        if (language, about_child) not in rendered:
            parts = message_render(
                template=template, language=language, context={"patient": patient, **context}
            )
            rendered[language, about_child] = _about(parts, patient, language) if about_child else parts
        return rendered[language, about_child]

    created: list[Message] = []
    for channel in channels:
        # (recipient's contact, the key's suffix, language, whether the text names the child)
        recipients: list[tuple[str | None, str, str, bool]]
        if not guardians:
            recipients = [(_recipient(patient, channel), "", patient.language or "pl", False)]
        elif channel == Message.Channel.IN_APP:  # the child's inbox, read by a guardian acting for them
            recipients = [("", "", guardians[0].language or "pl", True)]
        else:
            recipients = [(_recipient(g, channel), f":g{g.pk}", g.language or "pl", True) for g in guardians]
        for to, suffix, language, about_child in recipients:
            if to is None:
                continue
            message = _create(
                key=f"{key}:{channel}{suffix}",
                kind=kind,
                channel=channel,
                patient=patient,
                appointment=appointment,
                requires_live_appointment=requires_live_appointment,
                to=to,
                language=language,
                parts=parts_in(language, about_child),
                expires_at=expires_at,
            )
            if message is not None:
                created.append(message)
    ids = [m.pk for m in created if m.state == Message.State.PENDING]
    if ids and deliver_later:

        def enqueue() -> None:
            from .tasks import message_deliver_task

            for message_id in ids:
                message_deliver_task.delay(message_id)

        transaction.on_commit(enqueue)
    return created


GUARDIAN_KEY = re.compile(r":g(\d+)$")  # the key's end of a child's message sent to a guardian


def guardian_in_key(key: str) -> int | None:
    """The guardian a child's message was sent to (its key ends with ":g<id>"), or None."""
    found = GUARDIAN_KEY.search(key)
    return int(found.group(1)) if found else None


def _about(parts: dict[str, str], patient: Patient, language: str) -> dict[str, str]:
    """The same message, opened with whom it is about (a guardian may receive several children's)."""
    with translation.override(language):
        line = _("For: %(name)s.") % {"name": f"{patient.first_name} {patient.last_name}"}
    html = re.sub(r"(<body[^>]*>)", lambda m: f"{m.group(1)}\n<p>{escape(line)}</p>", parts["html"], count=1)
    return {
        **parts,
        "text": f"{line}\n\n{parts['text']}",
        "html": html,
        "sms": f"{line} {parts['sms']}",
    }


def _create(
    *,
    key: str,
    kind: str,
    channel: str,
    patient: Patient,
    appointment: Appointment | None,
    requires_live_appointment: bool,
    to: str,
    language: str,
    parts: dict[str, str],
    expires_at: dt.datetime,
) -> Message | None:
    """Insert one message, or None when its key exists (composed before: it is sent once)."""
    in_app = channel == Message.Channel.IN_APP
    try:
        with transaction.atomic():
            return Message.objects.create(
                key=key,
                kind=kind,
                channel=channel,
                patient=patient,
                appointment=appointment,
                requires_live_appointment=requires_live_appointment,
                to=to,
                language=language,
                subject=parts["subject"],
                body_text=parts["sms"] if channel == Message.Channel.SMS else parts["text"],
                body_html=parts["html"] if channel == Message.Channel.EMAIL else "",
                expires_at=expires_at,
                state=Message.State.SENT if in_app else Message.State.PENDING,
                sent_at=timezone.now() if in_app else None,
            )
    except IntegrityError:
        return None  # already composed (a second run, or another worker): send it once


def _claim(*, message_id: int, now: dt.datetime) -> Message | None:
    """Move a sendable message to `sending`. Only one caller can win this UPDATE."""
    with transaction.atomic():
        expired = Message.objects.filter(
            pk=message_id, state__in=[Message.State.PENDING, Message.State.FAILED], expires_at__lte=now
        ).update(state=Message.State.EXPIRED)
        if expired:
            channel = Message.objects.filter(pk=message_id).values_list("channel", flat=True).first()
            notifications_expired_observed(channel=channel or "unknown", reason="time_to_live")
            return None
        message = (
            Message.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=message_id, state__in=[Message.State.PENDING, Message.State.FAILED])
            .select_related("appointment")
            .first()
        )
        if message is None:
            return None
        if message.requires_live_appointment and (
            message.appointment is None
            or message.appointment.status not in LIVE_APPOINTMENT
            or message.appointment.start <= now
        ):
            message.state = Message.State.SKIPPED
            message.save(update_fields=["state"])
            return None
        message.state = Message.State.SENDING
        message.attempts = F("attempts") + 1
        message.save(update_fields=["state", "attempts"])
    message.refresh_from_db()
    return message


def message_deliver(*, message_id: int, now: dt.datetime | None = None, body_text: str | None = None) -> str:
    """Deliver one message at most once; returns its final state.

    `body_text` replaces the stored text on the wire only (sign-in codes are never stored).
    """
    now = now or timezone.now()
    message = _claim(message_id=message_id, now=now)
    if message is None:
        return Message.objects.filter(pk=message_id).values_list("state", flat=True).first() or "missing"
    if body_text is not None:
        message.body_text = body_text
    try:
        provider_id = channel_for(message.channel).send(message)
    except DeliveryError as exc:
        state = Message.State.FAILED if message.attempts < MAX_ATTEMPTS else Message.State.EXPIRED
        Message.objects.filter(pk=message.pk).update(state=state, last_error=str(exc)[:200])
        if state == Message.State.EXPIRED:
            notifications_expired_observed(channel=message.channel, reason="attempts")
        logger.warning("message %s delivery failed (attempt %s): %s", message.pk, message.attempts, exc)
        return state
    Message.objects.filter(pk=message.pk).update(
        state=Message.State.SENT, sent_at=timezone.now(), provider_id=provider_id[:100], last_error=""
    )
    if settings.DEBUG:
        dev_outbox_record(message=message)
    return Message.State.SENT


def messages_retry(*, now: dt.datetime | None = None, limit: int = 500) -> list[int]:
    """Ids of messages to try again: failed ones, and pending ones whose task was lost (outage)."""
    now = now or timezone.now()
    stale = now - dt.timedelta(minutes=5)
    return list(
        Message.objects.filter(
            Q(state=Message.State.FAILED) | Q(state=Message.State.PENDING, created_at__lt=stale),
            expires_at__gt=now,
        )
        .order_by("expires_at")
        .values_list("id", flat=True)[:limit]
    )


def messages_expire(*, now: dt.datetime | None = None) -> int:
    """Mark messages whose time-to-live passed unsent as expired (they will never be sent)."""
    now = now or timezone.now()
    expired = 0
    for channel in Message.Channel.values:  # one UPDATE per channel: each dropped message counted once
        count = Message.objects.filter(
            channel=channel, state__in=[Message.State.PENDING, Message.State.FAILED], expires_at__lte=now
        ).update(state=Message.State.EXPIRED)
        notifications_expired_observed(channel=channel, reason="time_to_live", count=count)
        expired += count
    return expired


def message_mark_read(*, patient: Patient, message_id: int) -> int:
    return Message.objects.filter(
        pk=message_id, patient=patient, channel=Message.Channel.IN_APP, read_at__isnull=True
    ).update(read_at=timezone.now())


def dev_outbox_record(*, message: Message) -> None:
    """Development only: keep the last messages as sent (sign-in codes included) for /dev/outbox/."""
    if not settings.DEBUG:
        return
    entries: list[dict[str, str]] = cache.get(DEV_OUTBOX_KEY) or []
    entries.insert(
        0,
        {
            "at": timezone.now().isoformat(timespec="seconds"),
            "channel": message.channel,
            "to": message.to,
            "subject": message.subject,
            "text": message.body_text,
        },
    )
    cache.set(DEV_OUTBOX_KEY, entries[:50], timeout=3600)
