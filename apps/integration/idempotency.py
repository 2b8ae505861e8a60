"""Idempotency-Key: a retried POST/PUT/PATCH returns the first response and changes nothing.

The key is claimed with `INSERT ... ON CONFLICT DO NOTHING` inside the request's transaction, so a
concurrent retry with the same key waits on the unique index until the first request commits (then
replays its response) or rolls back (then runs itself). The stored response is committed together
with the change it describes: there is no window in which one exists without the other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, cast

from django.db import connection
from django.db.models import JSONField, Model
from django.utils import timezone

from apps.core.errors import DomainError
from apps.core.queries import insert_statement, prepared_cursor

from .models import ApiClient, IdempotencyRecord

HEADER = "Idempotency-Key"
KEPT_HEADERS = ("ETag", "Location", "Content-Type")
RETENTION = dt.timedelta(hours=24)


def request_hash(*, method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", body):
        digest.update(part)
    return digest.hexdigest()


def idempotency_key_validate(key: str) -> str:
    if not (1 <= len(key) <= 255) or not key.isascii() or not key.isprintable():
        raise DomainError("invalid_idempotency_key")
    return key


def idempotency_claim(
    *, client: ApiClient, key: str, method: str, path: str, digest: str
) -> tuple[int | None, IdempotencyRecord | None]:
    """(new record id, None) when this request runs; (None, first record) when it is a retry."""
    record_id, first, _ = idempotency_claim_reading(
        client=client, key=key, method=method, path=path, digest=digest
    )
    return record_id, first


def idempotency_claim_reading(
    *,
    client: ApiClient,
    key: str,
    method: str,
    path: str,
    digest: str,
    read: tuple[str, Sequence[Any]] | None = None,
) -> tuple[int | None, IdempotencyRecord | None, tuple[Any, ...] | None]:
    """`idempotency_claim`, and in the same statement (one round trip) the read a request makes first
    once its key is claimed: `read` is a SELECT of at most one row with `%s` parameters, run after the
    claim as it would be on its own. Returns its row as well (its columns all NULL where it found
    nothing; None without a read, or for a retry)."""
    claim_params = [client.pk, key, method, path[:300], digest, timezone.now()]
    if read is None:
        sql, params = CLAIM_SQL, claim_params
    else:
        sql, params = _claim_reading(read[0]), [*claim_params, *read[1]]
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row and row[0] is not None:
        return int(row[0]), None, (tuple(row[1:]) if read is not None else None)
    record = IdempotencyRecord.objects.get(client=client, key=key)
    if record.request_hash != digest:
        raise DomainError("idempotency_key_reused")
    if record.status_code is None:
        raise DomainError("idempotency_in_progress")
    return None, record, None


CLAIM_SQL = (
    f"INSERT INTO {IdempotencyRecord._meta.db_table}"  # noqa: S608 (the table name from the model)
    " (client_id, key, method, path, request_hash, response_headers, created_at)"
    " VALUES (%s, %s, %s, %s, %s, '{}'::jsonb, %s)"
    " ON CONFLICT (client_id, key) DO NOTHING RETURNING id"
)


@lru_cache(maxsize=16)
def _claim_reading(read: str) -> str:
    """The claim, then the read beside it: one row whatever either finds (the claim's id is NULL for a
    key already claimed, the read's columns NULL where it found nothing)."""
    return (
        f"WITH claim AS ({CLAIM_SQL}) "  # noqa: S608 (fixed fragments; every value is bound)
        f"SELECT (SELECT id FROM claim), r.* FROM (SELECT 1) AS one LEFT JOIN LATERAL ({read}) AS r ON true"
    )


def idempotency_known(*, client: ApiClient, key: str) -> bool:
    """Whether this client already sent a request with this key (a retry): read only, no claim. Runs
    on every refused booking (a lost race), hence plain SQL."""
    with prepared_cursor() as cursor:
        cursor.execute(KNOWN_SQL, [client.pk, key[:255]])
        return cursor.fetchone() is not None


KNOWN_SQL = f"SELECT 1 FROM {IdempotencyRecord._meta.db_table} WHERE client_id = %s AND key = %s"  # noqa: S608


def idempotency_records_purge(*, older_than: dt.timedelta = RETENTION) -> int:
    """Keys are honoured for RETENTION (clients retry within minutes); older records are deleted."""
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted


def idempotency_store(
    *,
    record_id: int,
    status_code: int,
    content: bytes,
    headers: dict[str, Any],
    rows: Sequence[Model] = (),
) -> None:
    """Store the answer under its key. `rows` (model instances of one class) are inserted by the same
    statement: a write request's access log, which commits with its answer anyway (one round trip)."""
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    kept = {k: str(v) for k, v in headers.items() if k in KEPT_HEADERS}
    as_json = cast(JSONField, IdempotencyRecord._meta.get_field("response_body"))
    sql, params = (
        STORE_SQL,
        [
            status_code,
            as_json.get_db_prep_save(body, connection),
            as_json.get_db_prep_save(kept, connection),
            record_id,
        ],
    )
    if rows:
        insert, values = insert_statement(rows)
        sql, params = _store_with(insert), [*values, *params]
    with prepared_cursor() as cursor:  # every write request of the API ends here
        cursor.execute(sql, params)


@lru_cache(maxsize=16)
def _store_with(insert: str) -> str:
    return f"WITH written AS ({insert}) {STORE_SQL}"


STORE_SQL = (
    f"UPDATE {IdempotencyRecord._meta.db_table} "  # noqa: S608 (the table name from the model)
    "SET status_code = %s, response_body = %s, response_headers = %s WHERE id = %s"
)
