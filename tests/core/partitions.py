"""Test helpers for month-partitioned tables (apps.core.partitions): committed data, and migrations
tested on populated data."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from django.db import close_old_connections, connection

from apps.core import partitions as core


@contextlib.contextmanager
def own_partitions(*tables: core.MonthPartitioned, truncate: tuple[str, ...] = ()) -> Iterator[None]:
    """Partitions a test makes (attached, or made and detached) are dropped afterwards; `truncate`:
    tables emptied first (the test's committed rows)."""
    before = {table.table: set(core.partition_names(table)) for table in tables}
    try:
        yield
    finally:
        with connection.cursor() as cur:
            if truncate:
                cur.execute(f"TRUNCATE {', '.join(truncate)} CASCADE")
            for table in tables:
                for name in set(core.partition_names(table)) - before[table.table]:
                    cur.execute(f"ALTER TABLE {table.table} DETACH PARTITION {name}")
                cur.execute(
                    "SELECT relname FROM pg_class "
                    "WHERE relname LIKE %s AND relkind = 'r' AND NOT relispartition",
                    [table.table.replace("_", r"\_") + r"\_p%"],
                )
                for (name,) in cur.fetchall():
                    if table.month_of_partition(name) is not None:
                        cur.execute(f"DROP TABLE {name}")  # detached by the test (or just now)


def at_once(*works: Callable[[], object]) -> list[object]:
    """Run each function in its own thread and connection, started together; their results (or the
    exceptions they raised), in the order they finished."""
    results: list[object] = []
    barrier = threading.Barrier(len(works))

    def run(work: Callable[[], object]) -> None:
        barrier.wait()
        try:
            results.append(work())
        except Exception as exc:  # inspected by the test
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(work,)) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    close_old_connections()
    return results


def migrate(targets: list[tuple[str, str]] | None) -> None:
    """Migrate the test database to `targets` (None: the latest migrations)."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


def models_at(targets: list[tuple[str, str]]) -> Any:
    """The models as they were at `targets` (the app registry of that migration state): rows of a
    model whose table a later migration changed are written through these, not the factories."""
    from django.db.migrations.executor import MigrationExecutor

    return MigrationExecutor(connection).loader.project_state(targets).apps
