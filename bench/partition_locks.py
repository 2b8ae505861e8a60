"""What each attached slot partition costs the booking's locking read (docs/scaling.md, "What each
attached partition costs a booking").

    DATABASE_URL=... REDIS_URL=... .venv/bin/python -m bench.partition_locks [--months-back 36 --ahead 27]

Times `apps.booking.sql.slot_facts` (a prepared statement: its generic plan after the fifth run) with
the partitions the database has, then with partitions made for `--months-back` months before the current
one and `--ahead` after it, then the same with custom plans; and counts the locks the transaction holds.
Everything runs in one transaction that is rolled back: the database is left as it was.
"""

from __future__ import annotations

import argparse
import time

from bench import run as benchrun


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months-back", type=int, default=36)
    parser.add_argument("--ahead", type=int, default=27)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    benchrun._settings_environment()
    import django

    django.setup()
    from django.db import connection, transaction
    from django.utils import timezone

    from apps.booking import sql
    from apps.scheduling import partitions

    today = timezone.localdate()

    def locks() -> int:
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()")
            return int(cur.fetchone()[0])

    def timed() -> tuple[float, int]:
        held = locks()
        for _ in range(20):  # past the fifth execution: the generic plan
            sql.slot_facts(slot_id=0, patient_id=0, today=today)
        began = time.perf_counter()
        for _ in range(args.runs):
            sql.slot_facts(slot_id=0, patient_id=0, today=today)
        took = (time.perf_counter() - began) / args.runs * 1e6
        return took, locks() - held  # the statement's own (the DDL's are held already)

    def line(label: str) -> None:
        took, taken = timed()
        count = len(partitions.partition_names())
        print(f"{count:4d} partitions{label}: {took:7.0f} us per statement, {taken} locks taken")

    with transaction.atomic():
        line("")
        month = partitions.month_of(timezone.now())
        partitions.partitions_ensure(
            partitions.add_months(month, -args.months_back), partitions.add_months(month, args.ahead)
        )
        line("")  # (PostgreSQL re-plans a prepared statement whose table gained partitions)
        with connection.cursor() as cur:
            cur.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        line(", custom plans")
        transaction.set_rollback(True)


if __name__ == "__main__":
    main()
