"""The hand-written SQL of the patient registry's local copy (issue 19): whom a signed-in person may act
for is read on every patient page (`apps.portal.acting`), where composing the queryset cost more CPU
than PostgreSQL spent answering it. Prepared on the server (`apps.core.queries.prepared_cursor`), on
the database the ORM would read (`dbrouter.read_alias()`); its plain-ORM twin is in
tests/patients/test_sql.py."""

from __future__ import annotations

from functools import cache

from apps.core.dbrouter import read_alias
from apps.core.queries import model_from_row, prepared_cursor, select_columns

from .models import Patient, Relationship

PATIENT = Patient._meta.db_table
RELATIONSHIP = Relationship._meta.db_table


@cache
def _relationships_sql() -> str:
    return f"""
    SELECT {select_columns(Relationship, "r")}, {select_columns(Patient, "p")}
    FROM {RELATIONSHIP} r JOIN {PATIENT} p ON p.id = r.patient_id
    WHERE r.representative_id = %(representative)s
    ORDER BY r.valid_from, r.id
    """  # noqa: S608 (table and column names from the models; the value bound)


def relationships_of(*, representative_id: int) -> list[Relationship]:
    """The relationships naming this person as the representative (in the model's order), each with
    the person represented loaded."""
    with prepared_cursor(using=read_alias()) as cursor:
        cursor.execute(_relationships_sql(), {"representative": representative_id})
        rows = cursor.fetchall()
    out = []
    for row in rows:
        relationship, after = model_from_row(Relationship, row)
        relationship.patient = model_from_row(Patient, row, after)[0]
        out.append(relationship)
    return out
