"""Delivery channels behind one interface, and the SMS gateway seam.

`channel_for(name).send(message)` delivers a `Message` and returns the provider's id, or raises
`DeliveryError`. The SMS gateway class is chosen by `settings.CER_SMS_BACKEND`: console in
development, memory in tests, log in production until a real operator gateway is plugged in.
Nothing here touches the database: delivery happens outside any transaction.
"""

from __future__ import annotations

import logging
import sys
import uuid
from typing import TYPE_CHECKING, ClassVar, Protocol

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from .models import Message

logger = logging.getLogger("cer.notifications")


class DeliveryError(Exception):
    """The channel could not deliver now; the message may be retried until it expires."""


def phone_mask(phone: str) -> str:
    return "***" + phone[-3:] if phone else ""


class SmsGateway:
    """An SMS operator. `send` returns the operator's message id or raises DeliveryError."""

    def send(self, *, to: str, text: str) -> str:
        raise NotImplementedError


class ConsoleSmsGateway(SmsGateway):
    """Development: print the SMS (sign-in codes included) to the console of `make run`."""

    def send(self, *, to: str, text: str) -> str:
        sys.stdout.write(f"--- SMS to {to} ---\n{text}\n---\n")
        sys.stdout.flush()
        return f"console-{uuid.uuid4().hex[:12]}"


class MemorySmsGateway(SmsGateway):
    """Tests: keep sent SMS in `MemorySmsGateway.outbox`, like django.core.mail.outbox."""

    outbox: ClassVar[list[dict[str, str]]] = []

    def send(self, *, to: str, text: str) -> str:
        provider_id = f"mem-{uuid.uuid4().hex[:12]}"
        self.outbox.append({"to": to, "text": text, "id": provider_id})
        return provider_id


class LogSmsGateway(SmsGateway):
    """Production placeholder until an operator is contracted: logs that an SMS was due.

    Only the masked number and the length are logged: the text may hold a sign-in code.
    """

    def send(self, *, to: str, text: str) -> str:
        provider_id = f"log-{uuid.uuid4().hex[:12]}"
        logger.info(
            "sms %s to %s (%d characters) not sent: no operator configured",
            provider_id,
            phone_mask(to),
            len(text),
        )
        return provider_id


def sms_gateway() -> SmsGateway:
    path = getattr(settings, "CER_SMS_BACKEND", "apps.notifications.channels.LogSmsGateway")
    return import_string(path)()


class Channel(Protocol):
    def send(self, message: Message) -> str: ...


class InAppChannel:
    """The message row itself is the in-app message (the patient's inbox): nothing to transmit."""

    def send(self, message: Message) -> str:
        return f"in-app-{message.pk}"


class EmailChannel:
    def send(self, message: Message) -> str:
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.body_text,
            from_email=getattr(settings, "DEFAULT_FROM_EMAIL", None),
            to=[message.to],
            headers={"X-CeR-Message": str(message.pk)},
        )
        if message.body_html:
            email.attach_alternative(message.body_html, "text/html")
        try:
            email.send()
        except OSError as exc:  # SMTP errors are OSError subclasses
            raise DeliveryError(f"e-mail: {exc.__class__.__name__}") from exc
        return f"email-{message.pk}"


class SmsChannel:
    def send(self, message: Message) -> str:
        try:
            return sms_gateway().send(to=message.to, text=message.body_text)
        except DeliveryError:
            raise
        except OSError as exc:
            raise DeliveryError(f"sms: {exc.__class__.__name__}") from exc


def channel_for(name: str) -> Channel:
    channels: dict[str, Channel] = {"in_app": InAppChannel(), "email": EmailChannel(), "sms": SmsChannel()}
    return channels[name]
