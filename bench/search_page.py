"""CPU and queries per patient search page, in process (issue 19): the Django test client on the production
settings against a generated data set (`python -m bench.run --quick --only search` leaves one), several
cases (signed in and anonymous, grouped results within 50 and 100 km of the largest town, a later page,
the whole country, a voivodeship, one place, no results, Polish and English), N pages per case and
round. Prints the median CPU per page of each case and round, and the queries per page.

    DATABASE_URL=postgres://.../cer_x_bench REDIS_URL=redis://127.0.0.1:6379/8 \
        python -m bench.search_page [--pages 40] [--rounds 3] [--html DIR]

`--html DIR` writes each case's page with its whitespace and CSRF tokens normalised, to compare two
versions of the code on the same data (`diff -r`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import time
from pathlib import Path
from typing import Any

from bench.run import _settings_environment, search_patient

TAG = "99/SP/"  # the places this script adds (nfz_code prefix)


def _places_ensure() -> None:
    """A full page of grouped results: the quick data set has one place per service and voivodeship, so
    this adds 12 KARDIO_1 places in the largest town (half with a doctor named), 10 free slots each over
    the next days. Once per database; the rows stay for the next run (the same data before and after)."""
    from django.db import transaction
    from django.utils import timezone

    from apps.catalog.models import Contract, Facility, Locality, Service
    from apps.scheduling.models import Practitioner, Schedule, Slot

    if Facility.objects.filter(nfz_code__startswith=TAG).exists():
        return
    service = Service.objects.get(code="KARDIO_1")
    city = Locality.objects.order_by("-population").first()
    assert city is not None
    first = timezone.localtime().replace(hour=8, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    with transaction.atomic():
        for n in range(12):
            lat, lon = city.lat + 0.01 * (n % 4), city.lon + 0.015 * (n // 4)
            facility = Facility.objects.create(
                nfz_code=f"{TAG}{n:03d}",
                name=f"Poradnia kardiologiczna nr {n + 1}",
                address=f"ul. Przykładowa {n + 1}",
                locality=city,
                voivodeship_id=city.voivodeship_id,
                lat=lat,
                lon=lon,
            )
            Contract.objects.create(facility=facility, service=service, valid_from=dt.date(2026, 1, 1))
            doctor = (
                Practitioner.objects.create(facility=facility, name=f"dr Anna Lis {n}") if n % 2 else None
            )
            schedule = Schedule.objects.create(facility=facility, service=service, practitioner=doctor)
            Slot.objects.bulk_create(
                Slot(
                    schedule=schedule,
                    facility=facility,
                    service=service,
                    practitioner=doctor,
                    voivodeship_id=city.voivodeship_id,
                    locality=city,
                    lat=lat,
                    lon=lon,
                    start=first + dt.timedelta(days=day, minutes=20 * n),
                    end=first + dt.timedelta(days=day, minutes=20 * n + 20),
                    status=Slot.Status.FREE,
                )
                for day in range(10)
            )


def _cases() -> tuple[dict[str, tuple[str, bool, str]], Any, Any]:
    """label -> (URL, signed in, language); the patient who signs in (no live KARDIO_1 registration)."""
    from urllib.parse import urlencode

    from django.utils import timezone

    from apps.catalog.models import Locality, Service
    from apps.portal.selectors import place_search

    service = Service.objects.get(code="KARDIO_1")
    today = timezone.localdate()
    dates = {"date_from": today.isoformat(), "date_to": (today + dt.timedelta(days=30)).isoformat()}
    city = Locality.objects.order_by("-population").first()
    assert city is not None
    from apps.scheduling.selectors import Near

    places, _ = place_search(
        service=service, near=Near(lat=city.lat, lon=city.lon, radius_km=50), date_from=today, places=5
    )
    grouped = {"service": service.pk, "city": city.name, "radius_km": 50, **dates}
    one_place = {**grouped, "facility": places[0].facility.pk}
    voivodeship = {"service": service.pk, "voivodeship": city.voivodeship_id, **dates}
    later = today + dt.timedelta(days=200)
    nothing = {
        **grouped,
        "date_from": later.isoformat(),
        "date_to": (later + dt.timedelta(days=5)).isoformat(),
    }
    patient = search_patient(service.code)

    def url(query: dict[str, Any]) -> str:
        return "/?" + urlencode(query)

    wide = {**grouped, "radius_km": 100}
    country = {"service": service.pk, **dates}
    cases = {
        "grouped, signed in, pl": (url(grouped), True, "pl"),
        "grouped, page 3, signed in, pl": (url({**grouped, "page": 3}), True, "pl"),
        "100 km, signed in, pl": (url(wide), True, "pl"),
        "100 km, anonymous, pl": (url(wide), False, "pl"),
        "the country, anonymous, pl": (url(country), False, "pl"),
        "grouped, signed in, en": (url(grouped), True, "en"),
        "grouped, anonymous, pl": (url(grouped), False, "pl"),
        "voivodeship, signed in, pl": (url(voivodeship), True, "pl"),
        "one place, signed in, pl": (url(one_place), True, "pl"),
        "one place, anonymous, en": (url(one_place), False, "en"),
        "no results, signed in, pl": (url(nothing), True, "pl"),
        "no results, anonymous, en": (url(nothing), False, "en"),
        "empty form, anonymous, pl": ("/", False, "pl"),
    }
    return cases, patient, service


def normalised(html: str) -> str:
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', 'name="csrfmiddlewaretoken" value=""', html)
    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", html)).strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--html", type=Path)
    args = parser.parse_args(argv)
    _settings_environment()
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from apps.portal.services import patient_user_link

    _places_ensure()
    cases, patient, _service = _cases()
    user = patient_user_link(patient=patient)
    clients = {}
    for signed_in in (True, False):
        for language in ("pl", "en"):
            client = Client(HTTP_HOST="127.0.0.1")
            client.cookies["django_language"] = language
            if signed_in:
                client.force_login(user)
            clients[signed_in, language] = client
    if args.html:
        args.html.mkdir(parents=True, exist_ok=True)
    queries: dict[str, int] = {}
    for label, (url, signed_in, language) in cases.items():
        client = clients[signed_in, language]
        for _ in range(3):  # warm up: templates, reference data, connections
            response = client.get(url)
            assert response.status_code == 200, (label, response.status_code)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        queries[label] = len(captured)
        if args.html:
            name = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
            (args.html / f"{name}.html").write_text(normalised(response.content.decode()), encoding="utf-8")
    cpu: dict[str, list[float]] = {label: [] for label in cases}
    for _round in range(args.rounds):
        for label, (url, signed_in, language) in cases.items():
            client = clients[signed_in, language]
            began = time.process_time()
            for _ in range(args.pages):
                client.get(url)
            cpu[label].append((time.process_time() - began) / args.pages * 1000)
    width = max(len(label) for label in cases)
    print(f"{'case':{width}}  queries  CPU ms per page ({args.pages} pages) per round")
    for label in cases:
        rounds = ", ".join(f"{v:.1f}" for v in cpu[label])
        print(f"{label:{width}}  {queries[label]:7}  {rounds}  (median {statistics.median(cpu[label]):.1f})")
    every = [v for values in cpu.values() for v in values]
    print(f"all cases: median {statistics.median(every):.1f} ms per page")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
