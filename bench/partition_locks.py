"""What each attached slot partition costs the booking's locking read (docs/scaling.md, "What each
attached partition costs a booking").

    DATABASE_URL=... REDIS_URL=... .venv/bin/python -m bench.partition_locks [--months-back 36 --ahead 27]

Times `apps.booking.sql.slot_facts` (a prepared statement: its generic plan after the fifth run) with
the partitions the database has, then with partitions made for `--months-back` months before the current
one and `--ahead` after it, then the same with custom plans; and counts the locks the statement takes.
Everything runs in one transaction that is rolled back: the database is left as it was.
"""

from __future__ import annotations

import argparse
import time
from typing import NamedTuple

from bench import run as benchrun


class Line(NamedTuple):
    label: str
    partitions: int
    micros: float  # per statement
    locks: int  # held by the statement


def measure(*, months_back: int, ahead: int, runs: int) -> list[Line]:
    from django.db import connection, transaction
    from django.utils import timezone

    from apps.booking import sql
    from apps.scheduling import partitions

    today = timezone.localdate()

    def locks() -> int:
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()")
            return int(cur.fetchone()[0])

    lines: list[Line] = []

    def line(label: str) -> Line:
        held = locks()
        for _ in range(20):  # past the fifth execution: the generic plan
            sql.slot_facts(slot_id=0, patient_id=0, today=today)
        began = time.perf_counter()
        for _ in range(runs):
            sql.slot_facts(slot_id=0, patient_id=0, today=today)
        took = (time.perf_counter() - began) / runs * 1e6
        # The statement's locks are held to the end of the transaction: those it took now (the DDL's are
        # in other modes) and those it took before.
        taken = locks() - held + (lines[-1].locks if lines else 0)
        lines.append(Line(label, len(partitions.partition_names()), took, taken))
        return lines[-1]

    with transaction.atomic():
        line("as the database is")
        month = partitions.month_of(timezone.now())
        partitions.partitions_ensure(
            partitions.add_months(month, -months_back), partitions.add_months(month, ahead)
        )
        line("more partitions")  # PostgreSQL re-plans a statement whose table changed
        with connection.cursor() as cur:
            cur.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        line("more partitions, custom plans")
        transaction.set_rollback(True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months-back", type=int, default=36)
    parser.add_argument("--ahead", type=int, default=27)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    benchrun._settings_environment()
    import django

    django.setup()
    for line in measure(months_back=args.months_back, ahead=args.ahead, runs=args.runs):
        print(
            f"{line.partitions:4d} partitions ({line.label}): {line.micros:7.0f} us, {line.locks} locks held"
        )


if __name__ == "__main__":
    main()
