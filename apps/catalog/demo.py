"""Demo facilities: three in each voivodeship plus two large centres, with contracts such that every
service in the catalogue is offered in every voivodeship."""

from __future__ import annotations

import datetime as dt
from typing import TextIO

from django.db import transaction

from .models import Contract, Facility, Locality, Service, Voivodeship
from .services import reference_load

KINDS = ("Szpital Wojewódzki", "Centrum Medyczne", "Przychodnia Specjalistyczna")
CONTRACT_START = dt.date(2026, 1, 1)


def _visit_details(teryt: str, n: int) -> dict[str, object]:
    """Postcode, phone, opening hours and accessibility of a demo facility (the patient's facility page)."""
    return {
        "postcode": f"{int(teryt) * 4 % 100:02d}-{100 + 37 * n:03d}",
        "phone": f"+48 {int(teryt) + 10} {500 + n:03d} {10 + n:02d} {20 + n:02d}",
        "opening_hours": "pon.-pt. 7:30-18:00" if n % 2 == 0 else "pon.-pt. 8:00-20:00, sob. 9:00-13:00",
        "has_ramp": True,
        "has_lift": n != 1,
        "has_parking": n != 2,
        "has_accessible_toilet": n != 1,
    }


@transaction.atomic
def demo_seed(*, out: TextIO) -> None:
    counts = reference_load()
    out.write("reference data: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    services = list(Service.objects.order_by("code"))
    for voiv in Voivodeship.objects.all():
        towns = list(Locality.objects.filter(voivodeship=voiv).order_by("-population")[:3])
        for n in range(3):
            town = towns[n % len(towns)]
            facility, _ = Facility.objects.get_or_create(
                nfz_code=f"{voiv.teryt}/DEMO/{n + 1}",
                defaults={
                    "name": f"{KINDS[n]} {town.name}",
                    "address": f"ul. Zdrowa {10 + n}, {town.name}",
                    "locality": town,
                    "voivodeship": voiv,
                    "lat": town.lat + 0.004 * n,
                    "lon": town.lon - 0.003 * n,
                    **_visit_details(voiv.teryt, n),
                },
            )
            # Each service in each voivodeship: services are dealt out across its three facilities.
            for service in services[n::3]:
                Contract.objects.get_or_create(facility=facility, service=service, valid_from=CONTRACT_START)
    for simc_name, code in (("Warszawa", "14/DEMO/KARDIO"), ("Kraków", "12/DEMO/KARDIO")):
        centre = Locality.objects.filter(name=simc_name).first()
        if centre is None:
            continue
        town = centre
        facility, _ = Facility.objects.get_or_create(
            nfz_code=code,
            defaults={
                "name": f"Instytut Kardiologii {town.name}",
                "address": f"ul. Serdeczna 1, {town.name}",
                "locality": town,
                "voivodeship": town.voivodeship,
                "lat": town.lat + 0.01,
                "lon": town.lon + 0.01,
                **_visit_details(town.voivodeship_id, 9),
            },
        )
        for service in Service.objects.filter(specialty__icontains="kardio"):
            Contract.objects.get_or_create(facility=facility, service=service, valid_from=CONTRACT_START)
    out.write(f"demo facilities: {Facility.objects.count()}, contracts: {Contract.objects.count()}")
