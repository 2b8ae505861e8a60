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
            },
        )
        for service in Service.objects.filter(specialty__icontains="kardio"):
            Contract.objects.get_or_create(facility=facility, service=service, valid_from=CONTRACT_START)
    out.write(f"demo facilities: {Facility.objects.count()}, contracts: {Contract.objects.count()}")
