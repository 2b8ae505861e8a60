"""Run one monthly reconciliation in a process of its own, as a Celery worker would, and report its
wall time and peak memory (ru_maxrss of this process only). Prints one JSON line.

    python -m bench.recon_worker 2026-10-01
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import sys
import time


def main() -> None:
    import django

    django.setup()
    from apps.reconciliation.services import run_create, run_execute

    period_start = dt.date.fromisoformat(sys.argv[1])
    run = run_create(scope="month", period_start=period_start)
    began = time.perf_counter()
    run = run_execute(run_id=run.pk)
    wall = time.perf_counter() - began
    sys.stdout.write(
        json.dumps(
            {
                "run_id": run.pk,
                "state": run.state,
                "seconds": wall,
                "visits": run.visits_done,
                "eligible": run.eligible_count,
                "ineligible": run.ineligible_count,
                "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
