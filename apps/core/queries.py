"""Small query helpers shared by the hot paths."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache, lru_cache
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, Model, QuerySet

M = TypeVar("M", bound=Model)


def one_or_none(queryset: QuerySet[M]) -> M | None:
    """The row of a lookup by a unique key, or None. Unlike `.first()` it adds no ORDER BY, whose
    compilation is a measurable share of a booking request (docs/performance.md, the storm)."""
    return next(iter(queryset[:1]), None)


# --- prepared statements -----------------------------------------------------------------------------


@cache
def _prepared_cursor_class() -> type:
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparedCursor(ServerBindingCursor):  # type: ignore[misc, valid-type]
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            return super().execute(query, params, prepare=True)  # type: ignore[misc]

    return PreparedCursor


@contextmanager
def prepared_cursor(using: str = DEFAULT_DB_ALIAS) -> Iterator[Any]:
    """A cursor for the statements of the hot paths, run on every booking request: PostgreSQL parses and
    plans each distinct statement once per connection (a server-side prepared statement) instead of on
    every call, which was most of their database time (docs/performance.md). Same connection and
    transaction as the ORM, same error translation and query logging; parameters are bound on the
    server, so each must have a type PostgreSQL can infer. The ORM itself keeps Django's default
    (client-side binding, no prepared statements), which works behind any connection pooler; a pooler
    in transaction mode would need prepared-statement support (PgBouncer 1.21+) for these. `using`: the
    database alias (a read that may go to the replica passes `dbrouter.read_alias()`)."""
    db = connections[using]
    db.ensure_connection()
    raw = _prepared_cursor_class()(db.connection)
    cursor = db.make_debug_cursor(raw) if db.queries_logged else db.make_cursor(raw)
    with cursor:
        yield cursor
    # Its statements ran: the connection is usable, so the request's first ORM cursor or transaction
    # need not check it again (CONN_HEALTH_CHECKS: a `SELECT 1` round trip on every booking request).
    db.health_check_done = True  # type: ignore[attr-defined]  # Django sets it (base.py), the stubs lack it


_COLUMN_NAMES: dict[str, tuple[str, ...]] = {}


def column_names(cursor: Any, sql: str) -> tuple[str, ...]:
    """The names of the result columns of `sql`, just run on `cursor`. Read from the cursor once per
    statement text and process: psycopg builds a Column object for every column on every read of
    `cursor.description`, a measurable share of the booking's facts statement (~80 columns). `sql` must
    be a fixed statement (the names of its columns never change), as every caller's is."""
    names = _COLUMN_NAMES.get(sql)
    if names is None:
        names = _COLUMN_NAMES[sql] = tuple(column.name for column in cursor.description)
    return names


# --- models to and from plain SQL -------------------------------------------------------------------
# The booking write runs as one statement (apps/booking/services.py); these helpers keep its rows
# exactly what the ORM would read and write: same columns, converters, defaults and auto_now values.


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A constant of the code (a model's state, a choice) written into a statement as an SQL string
    literal: only lower-case letters, digits and underscores, so it needs no escaping. For a value a
    plan should know (`apps/booking/sql.py`, the facts statement); never for input."""
    if not (value and value.isascii() and all(c.islower() or c.isdigit() or c == "_" for c in value)):
        raise ValueError(f"not a plain constant: {value!r}")
    return f"'{value}'"


def select_columns(model: type[Model], alias: str) -> str:
    """`alias.col, ...` for every concrete field of the model, in the order `model_from_row` reads.
    Needs no database connection (SQL built at import time uses it)."""
    return ", ".join(f"{alias}.{_quote(str(f.column))}" for f in model._meta.concrete_fields)


@cache
def _loaders(model: type[Model]) -> tuple[int, list[str], list[tuple[int, Any, list[Any]]], int]:
    """Per model: its number of columns, its attribute names, the (index, column, converters) of the
    fields whose database values need converting, and the index of its primary key."""
    fields = model._meta.concrete_fields
    converting = []
    for i, field in enumerate(fields):
        col = field.get_col(model._meta.db_table)
        converters = field.get_db_converters(connection) + connection.ops.get_db_converters(col)
        if converters:
            converting.append((i, col, converters))
    pk = next(i for i, field in enumerate(fields) if field.primary_key)
    return len(fields), [f.attname for f in fields], converting, pk


def model_from_row(model: type[M], row: Sequence[Any], start: int = 0) -> tuple[M, int]:
    """A model instance from the columns of `select_columns` in a raw row, at `start`; returns it and
    the index of the next column. Values go through the fields' converters, as in a queryset."""
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: no proxy lookup per converter
    count, names, converting, _ = _loaders(model)
    values = list(row[start : start + count])
    for i, col, converters in converting:
        for converter in converters:
            values[i] = converter(values[i], col, db)
    return model.from_db(db.alias, names, values), start + count


def optional_model_from_row(model: type[M], row: Sequence[Any], start: int = 0) -> tuple[M | None, int]:
    """`model_from_row` for the columns of an outer join: None (nothing built) where its key is NULL."""
    count, _, _, pk = _loaders(model)
    if row[start + pk] is None:
        return None, start + count
    return model_from_row(model, row, start)


@cache
def _insert_fields(model: type[Model]) -> tuple[tuple[Any, str, str, bool, bool], ...]:
    """Per model, what `insert_columns` needs of each local concrete field, worked out once: the field,
    its attribute, its quoted column, whether it is the primary key, and whether its `pre_save` does
    more than read the attribute (auto_now and the like)."""
    return tuple(
        (
            field,
            field.attname,
            _quote(str(field.column)),
            bool(field.primary_key),
            type(field).pre_save is not Field.pre_save,
        )
        for field in model._meta.local_concrete_fields
    )


def insert_columns(obj: Model) -> tuple[list[str], list[Any]]:
    """Columns and database values of an INSERT of `obj`, as `save()` would send them: auto_now
    values set, the primary key left to the database unless given, database defaults omitted. Each
    value is the field's own `get_db_prep_save`, given the connection itself rather than its proxy
    (every attribute read through the proxy is a context-local lookup: ~50 per booking)."""
    db = connections[DEFAULT_DB_ALIAS]
    columns, params = [], []
    for field, attname, column, primary_key, pre_save in _insert_fields(type(obj)):
        if primary_key and getattr(obj, attname) is None:
            continue
        value = field.pre_save(obj, add=True) if pre_save else getattr(obj, attname)
        if hasattr(value, "resolve_expression"):  # DatabaseDefault: the column's DEFAULT applies
            continue
        columns.append(column)
        params.append(field.get_db_prep_save(value, db))
    return columns, params


def insert_statement(objs: Sequence[Model]) -> tuple[str, list[Any]]:
    """The INSERT of model instances of one class (not empty) and its parameters, as `insert_rows` runs
    it: to run on its own, or as a part (`WITH ... AS (INSERT ...)`) of another statement."""
    columns: list[str] = []
    params: list[Any] = []
    for obj in objs:
        columns, values = insert_columns(obj)
        params += values
    return _insert_sql(objs[0]._meta.db_table, tuple(columns), len(objs)), params


@lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...], rows: int) -> str:
    row = f"({', '.join(['%s'] * len(columns))})"
    return f"INSERT INTO {_quote(table)} ({', '.join(columns)}) VALUES {', '.join([row] * rows)}"  # noqa: S608


def insert_rows(objs: Sequence[Model]) -> int:
    """INSERT model instances of one class in one statement (ids stay unset on the objects): for
    append-only rows written on hot paths, where `bulk_create` spent longer composing the statement
    than PostgreSQL spent running it. Returns the number of rows."""
    if not objs:
        return 0
    sql, params = insert_statement(objs)
    with prepared_cursor() as cursor:
        cursor.execute(sql, params)
    return len(objs)


def mark_saved(*objs: Model) -> None:
    """Tell Django that instances written by plain SQL are now rows of the default database, as
    `save()` would have (so a later `save()` updates rather than inserts)."""
    for obj in objs:
        obj._state.adding, obj._state.db = False, connection.alias
