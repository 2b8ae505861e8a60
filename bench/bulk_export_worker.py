"""Export every SMART Scheduling Links Slot file ($bulk-publish) in a process of its own and report the
rate and the memory: what a web worker streaming the national NDJSON would spend. Prints one JSON line.

    python -m bench.bulk_export_worker            # the views, through Django's request handling
    python -m bench.bulk_export_worker --raw      # baseline: the same rows read by a bare cursor

Memory is sampled from /proc/self/statm every 20,000 lines: the peak resident set and its growth
after the first 10% of the lines show whether the stream stays flat (a list of rows would grow
linearly with the data set).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


def main() -> None:
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    from apps.catalog.models import Voivodeship

    raw = "--raw" in sys.argv
    client = Client(HTTP_HOST="127.0.0.1")
    lines = bytes_out = 0
    samples: list[tuple[int, float]] = [(0, rss_mib())]
    began = time.perf_counter()
    for teryt in Voivodeship.objects.order_by("teryt").values_list("teryt", flat=True):
        if raw:
            with connection.cursor() as cur:
                # The same rows the Slot file holds, read with a server-side cursor, no JSON.
                cur.execute("DECLARE bulk_raw CURSOR WITH HOLD FOR " + RAW_SQL, [teryt])
                while True:
                    cur.execute("FETCH 5000 FROM bulk_raw")
                    rows = cur.fetchall()
                    if not rows:
                        break
                    for row in rows:
                        lines += 1
                        bytes_out += len(str(row))
                        if lines % 20_000 == 0:
                            samples.append((lines, rss_mib()))
                cur.execute("CLOSE bulk_raw")
            continue
        response = client.get(f"/fhir/bulk/Slot-{teryt}.ndjson")
        assert response.status_code == 200, response.status_code
        for chunk in response.streaming_content:
            before = lines
            lines += chunk.count(b"\n")
            bytes_out += len(chunk)
            if lines // 20_000 != before // 20_000:
                samples.append((lines, rss_mib()))
        response.close()
    seconds = time.perf_counter() - began
    samples.append((lines, rss_mib()))
    after_tenth = [m for n, m in samples if n >= lines / 10] or [samples[-1][1]]
    sys.stdout.write(
        json.dumps(
            {
                "mode": "raw" if raw else "views",
                "lines": lines,
                "bytes": bytes_out,
                "seconds": seconds,
                "lines_per_s": lines / seconds if seconds else None,
                "rss_start_mib": samples[0][1],
                "rss_at_10pct_mib": after_tenth[0],
                "rss_end_mib": samples[-1][1],
                "rss_peak_mib": max(m for _, m in samples),
                "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


RAW_SQL = """
SELECT id, schedule_id, facility_id, service_id, locality_id, status, start, "end"
FROM scheduling_slot
WHERE voivodeship_id = %s AND kind = 'first' AND status IN ('free', 'held', 'booked') AND "end" > now()
  AND schedule_id IN (SELECT id FROM scheduling_schedule WHERE active)
"""


if __name__ == "__main__":
    main()
