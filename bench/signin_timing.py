"""Patient code sign-in: does the answer's timing tell a registered PESEL from an unknown one? (issue 15)

    .venv/bin/python -m scripts.services exec -- .venv/bin/python -m bench.signin_timing [--rounds 100]

(a migrated database from DATABASE_URL, or the embedded one; development settings with DEBUG off).

Sends many sign-in requests through the real view (Django's test client, in process: the network
would only add noise), alternating a registered PESEL (with a phone: a code is made and sent through
the in-memory SMS gateway) and an unknown valid one, each from a new address. Three cases:

- `first request, floor on`: the first code request for each PESEL, with the project's time floor
  (`CER_SIGNIN_MIN_SECONDS`, 0.4 s by default);
- `first request, no floor`: the same with the floor at 0, to show what the floor hides;
- `rate-limited, floor on`: the fourth request for a PESEL inside the code's lifetime (the
  "too many codes" answer, which once only registered PESELs got).

Reports the median of each kind, their difference, and the 10th-90th percentile spread. The figures
of one run are in docs/security.md. A measurement, not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from itertools import count

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
os.environ.setdefault("DEBUG", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="PESELs of each kind per case")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.test import Client, override_settings
    from django.urls import reverse

    from apps.core import pesel as pesel_lib
    from apps.patients.models import Patient
    from tests.factories import PatientFactory

    floor = float(settings.CER_SIGNIN_MIN_SECONDS)
    url = reverse("portal:login")
    addresses = count(1)
    serial = count(int(time.time()) % 100_000)

    def unknown() -> str:
        while True:
            candidate = pesel_lib.generate(
                dt.date(1950, 1, 1) + dt.timedelta(days=next(serial) % 20_000), "F", 7
            )
            if not Patient.objects.filter(pesel=candidate).exists():
                return candidate

    def known() -> str:
        while True:
            candidate = unknown()
            try:
                return PatientFactory(pesel=candidate, phone="+48600100200").pesel
            except Exception:  # noqa: S112 (a PESEL taken meanwhile: try the next one)
                continue

    def post(pesel: str) -> tuple[float, int]:
        n = next(addresses)
        client = Client(
            REMOTE_ADDR=f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}", HTTP_HOST="localhost"
        )
        began = time.perf_counter()
        response = client.post(url, {"pesel": pesel})
        return time.perf_counter() - began, response.status_code

    def case(name: str, *, min_seconds: float, warmups: int) -> dict[str, object]:
        times: dict[str, list[float]] = {"known": [], "unknown": []}
        statuses: dict[str, set[int]] = {"known": set(), "unknown": set()}
        pairs = [(known(), unknown()) for _ in range(args.rounds)]
        with override_settings(
            CER_SMS_BACKEND="apps.notifications.channels.MemorySmsGateway",
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            CER_PATIENT_CODE_SIGNIN=True,
        ):
            with override_settings(CER_SIGNIN_MIN_SECONDS=0.0):
                for pair in pairs:
                    for pesel in pair:
                        for _ in range(warmups):
                            post(pesel)
            with override_settings(CER_SIGNIN_MIN_SECONDS=min_seconds):
                for index, (k, u) in enumerate(pairs):
                    order = (
                        [("known", k), ("unknown", u)] if index % 2 == 0 else [("unknown", u), ("known", k)]
                    )
                    for kind, pesel in order:
                        seconds, status = post(pesel)
                        times[kind].append(seconds)
                        statuses[kind].add(status)
        medians = {kind: statistics.median(values) for kind, values in times.items()}
        deciles = {kind: statistics.quantiles(values, n=10) for kind, values in times.items()}
        return {
            "case": name,
            "known_ms": round(medians["known"] * 1000, 1),
            "unknown_ms": round(medians["unknown"] * 1000, 1),
            "difference_ms": round((medians["known"] - medians["unknown"]) * 1000, 1),
            "known_p10_p90_ms": [round(deciles["known"][0] * 1000, 1), round(deciles["known"][-1] * 1000, 1)],
            "unknown_p10_p90_ms": [
                round(deciles["unknown"][0] * 1000, 1),
                round(deciles["unknown"][-1] * 1000, 1),
            ],
            "statuses": {kind: sorted(values) for kind, values in statuses.items()},
        }

    cache.clear()
    rows = [
        case(f"first request, floor {floor:g} s", min_seconds=floor, warmups=0),
        case("first request, no floor", min_seconds=0.0, warmups=0),
        case(f"rate-limited (4th), floor {floor:g} s", min_seconds=floor, warmups=3),
    ]
    print(f"\n{args.rounds} PESELs of each kind per case, alternating, a new address per request\n")
    print(
        f"{'case':34} {'known':>9} {'unknown':>9} {'diff':>8}  {'known p10-p90':>15} {'unknown p10-p90':>15}"
    )
    for row in rows:
        k10, k90 = row["known_p10_p90_ms"]  # type: ignore[misc]
        u10, u90 = row["unknown_p10_p90_ms"]  # type: ignore[misc]
        print(
            f"{row['case']:34} {row['known_ms']:>7} ms {row['unknown_ms']:>7} ms {row['difference_ms']:>5} ms"
            f"  {k10:>6}-{k90:<6} ms  {u10:>6}-{u90:<6} ms   statuses {row['statuses']}"
        )


if __name__ == "__main__":
    main()
