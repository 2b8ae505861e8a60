"""Run one monthly reconciliation in a process of its own, as a Celery worker would, and report its
wall time, where it went (from the progress callbacks) and peak memory (ru_maxrss of this process
only; the SQL work is in PostgreSQL). Prints one JSON line.

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
    marks: list[tuple[float, int, str]] = []
    began = time.perf_counter()
    run = run_execute(
        run_id=run.pk, on_progress=lambda r: marks.append((time.perf_counter(), r.chunks_done, r.state))
    )
    wall = time.perf_counter() - began
    # The first callback comes after the scope is frozen and PESELs resolved, one after each chunk,
    # the last after the duplicate-claim and override passes.
    chunks = [t for t, _, state in marks if state != "done"]
    sys.stdout.write(
        json.dumps(
            {
                "run_id": run.pk,
                "state": run.state,
                "seconds": wall,
                "visits": run.visits_done,
                "eligible": run.eligible_count,
                "ineligible": run.ineligible_count,
                "chunks": run.chunks_done,
                "chunk_size": run.chunk_size,
                "setup_seconds": chunks[0] - began if chunks else None,
                "chunks_seconds": chunks[-1] - chunks[0] if chunks else None,
                "final_pass_seconds": marks[-1][0] - chunks[-1] if chunks else None,
                "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
