"""The indexes of the tables every booking writes (issue 19): each index is one more write per booking
(a slot's status change is not a HOT update, so it touches every index of its partition) and one more
build in a national load. The database's own catalogue is read, so an index added by any migration is
judged."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

HOT_TABLES = ("scheduling_slot", "booking_appointment", "booking_registration", "outbox_outboxevent")

# Foreign keys of the hot tables with no index leading with their column, and why that is right.
UNINDEXED_FOREIGN_KEYS = {
    # No read selects slots by locality (search goes through the facility); a locality is TERYT
    # reference data, never deleted while slots name it.
    ("scheduling_slot", "locality_id"),
}


def _indexes(table: str) -> list[tuple[str, list[str], str | None, str]]:
    """(name, key columns, predicate, definition) of each index of the table (the parent's, for a
    partitioned table)."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT c.relname,
                   ARRAY(SELECT a.attname FROM unnest(x.indkey[0:x.indnkeyatts - 1]) WITH ORDINALITY k(n, i)
                         JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n ORDER BY k.i),
                   pg_get_expr(x.indpred, x.indrelid), pg_get_indexdef(x.indexrelid)
            FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
            WHERE x.indrelid = %s::regclass
            """,
            [table],
        )
        return [(name, list(columns), predicate, definition) for name, columns, predicate, definition in cur]


def _foreign_key_columns(table: str) -> list[str]:
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT a.attname FROM pg_constraint k
            JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
            WHERE k.conrelid = %s::regclass AND k.contype = 'f' AND k.conparentid = 0
            """,
            [table],
        )
        return [row[0] for row in cur]


@pytest.mark.parametrize("table", HOT_TABLES)
def test_no_index_of_a_hot_table_is_a_plain_copy_of_the_start_of_another(table):
    """A plain (not partial, not unique) index whose columns begin another index is never needed:
    the other one serves every lookup it would, the foreign keys' checks included."""
    indexes = _indexes(table)
    redundant = [
        (name, other)
        for name, columns, predicate, definition in indexes
        if predicate is None and "UNIQUE" not in definition
        for other, other_columns, other_predicate, _ in indexes
        if other != name and other_predicate is None and other_columns[: len(columns)] == columns
    ]
    assert redundant == []


@pytest.mark.parametrize("table", HOT_TABLES)
def test_no_hot_table_carries_a_like_only_index(table):
    """Django adds a varchar_pattern_ops copy to the index of every character key, for LIKE 'x%',
    which no query of these tables uses."""
    assert [name for name, _c, _p, definition in _indexes(table) if "pattern_ops" in definition] == []


@pytest.mark.parametrize("table", HOT_TABLES)
def test_every_foreign_key_of_a_hot_table_has_an_index_leading_with_it_or_a_reason(table):
    """What the checks of a referenced row's delete (PROTECT, SET NULL) and the reads by that key
    need; a partial index with `IS NOT NULL` serves them as well."""
    leading = {columns[0] for _n, columns, predicate, _d in _indexes(table) if columns}
    missing = {(table, column) for column in _foreign_key_columns(table) if column not in leading}
    assert missing <= UNINDEXED_FOREIGN_KEYS


def test_every_constraint_and_index_the_models_declare_is_in_the_database():
    """What the models say the database enforces, it does: a migration step can drop more than it
    names (AlterField removing a column's own index drops every single-column index of that column,
    a partial unique one included)."""
    from django.apps import apps

    declared = {
        item.name: model._meta.db_table
        for model in apps.get_models()
        if model.__module__.startswith("apps.")
        for item in (*model._meta.constraints, *model._meta.indexes)
    }
    with connection.cursor() as cur:
        cur.execute(
            "SELECT conname FROM pg_constraint UNION SELECT relname FROM pg_class WHERE relkind IN ('i', 'I')"
        )
        present = {row[0] for row in cur.fetchall()}
    assert sorted((table, name) for name, table in declared.items() if name not in present) == []
