"""Encryption of webhook signing secrets at rest.

A webhook receiver verifies HMAC-SHA256 signatures with a secret it shares with us, so we must be able
to read the secret back in order to sign (unlike client secrets, which are only ever compared and are
stored as password hashes). We keep it encrypted with Fernet (AES-128-CBC + HMAC) under a key derived
from `CER_WEBHOOK_SECRET_KEY` (falls back to `SECRET_KEY`): a copy of the database alone reveals no
signing secret. Changing that key invalidates stored secrets (subscriptions must then be re-created).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet
from django.conf import settings


def _fernet() -> Fernet:
    material = getattr(settings, "CER_WEBHOOK_SECRET_KEY", "") or settings.SECRET_KEY
    key = hashlib.sha256(b"cer-webhook-secret:" + material.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def secret_encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def secret_decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()
