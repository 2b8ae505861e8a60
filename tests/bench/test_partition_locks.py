"""bench/partition_locks.py's plumbing (no timings): the statement's locks grow with the partitions it
cannot prune, and the database is left as it was."""

from __future__ import annotations

import pytest

from apps.scheduling import partitions
from bench.partition_locks import measure

pytestmark = pytest.mark.django_db


def test_the_statements_locks_grow_with_the_partitions_it_cannot_prune_and_all_is_rolled_back():
    before = partitions.partition_names()
    as_is, more, custom = measure(months_back=3, ahead=2, runs=5)
    added = more.partitions - as_is.partitions
    assert added >= 3  # the months before this one at least (those ahead may exist already)
    # Each added partition: its table and at least its primary key, the same number for each.
    grown = more.locks - as_is.locks
    assert grown >= 2 * added and grown % added == 0
    assert custom.partitions == more.partitions and custom.locks == more.locks
    assert partitions.partition_names() == before
