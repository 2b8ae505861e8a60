"""Demo patients for `make run`: sign in with their PESEL and the one-time code shown on the console
and on the development outbox page (/dev/outbox/). Idempotent: a second run changes nothing.

A family shows acting for others (issue 18): a mother who books for her son (9) and her daughter (who
turns 18 a few weeks after the first run: then the mother may no longer book for her), and for her
own mother, who authorised her. The relationships are recorded as the patient registry states them
(`apps.patients.registry.relationship_record`)."""

from __future__ import annotations

import datetime as dt
from typing import TextIO

from django.db import transaction
from django.utils import timezone

from apps.catalog.models import Entitlement, Service
from apps.core import pesel
from apps.core.demo import credential_remember
from apps.patients import registry
from apps.patients.models import Patient, PatientEntitlement, Referral, Relationship
from apps.patients.services import eighteenth_birthday

# (key, first name, last name, birth date, sex, serial, what the persona shows)
PERSONAS = [
    (
        "mammo",
        "Maria",
        "Demo-Mammografia",
        dt.date(1972, 3, 14),
        "F",
        4901,
        "woman born 1972: screening mammography (no referral)",
    ),
    (
        "cyto",
        "Zofia",
        "Demo-Cytologia",
        dt.date(1995, 9, 2),
        "F",
        4902,
        "woman born 1995: cytology screening (no referral)",
    ),
    (
        "cardio",
        "Jan",
        "Demo-Kardiologia",
        dt.date(1961, 6, 30),
        "M",
        4903,
        "man with a cardiology e-referral",
    ),
    (
        "donor",
        "Piotr",
        "Demo-ZHDK",
        dt.date(1980, 11, 5),
        "M",
        4904,
        "Honorary Blood Donor of Merit: served out of turn on the waiting list",
    ),
]


# The cardiology persona's e-referral is named in docs/integration-quickstart.md, whose shell blocks run
# as written (tests/api_docs/test_quickstart.py): its number and access code are fixed. Demo data only,
# which production never loads (CER_DEMO_DATA).
DEMO_REFERRAL_NUMBER = "DEMO490300000001"
DEMO_REFERRAL_CODE = "4903"


@transaction.atomic
def demo_seed(*, out: TextIO) -> None:
    today = timezone.localdate()
    lines = []
    for key, first, last, born, sex, serial, about in PERSONAS:
        number = pesel.generate(born, sex, serial)
        patient, _created = Patient.objects.get_or_create(
            pesel=number,
            defaults={
                "first_name": first,
                "last_name": last,
                "birth_date": born,
                "sex": sex,
                "email": f"{key}@demo.cer.invalid",
                "phone": f"+48500000{serial % 1000:03d}",
            },
        )
        extra = ""
        if key == "cardio":
            service = Service.objects.filter(code="KARDIO_1").first()
            if service is not None:
                referral, _created = Referral.objects.get_or_create(
                    number=DEMO_REFERRAL_NUMBER,
                    defaults={
                        "access_code": DEMO_REFERRAL_CODE,
                        "patient": patient,
                        "service": service,
                        "issued_on": today,
                        "valid_until": today + dt.timedelta(days=365),
                    },
                )
                extra = f"; e-referral {referral.number}, access code {referral.access_code}"
        if key == "donor":
            entitlement = Entitlement.objects.filter(code="ZHDK").first()
            if entitlement is not None:
                PatientEntitlement.objects.get_or_create(
                    patient=patient,
                    entitlement=entitlement,
                    valid_from=dt.date(2020, 1, 1),
                    defaults={"document": "DEMO-ZHDK-1"},
                )
        line = f"patient {first} {last}: PESEL {number} ({about}){extra}"
        credential_remember(f"patient:{key}", line)
        lines.append(line)
    lines += _family(today)
    # The lines themselves are printed by seed_demo with the other demo log-ins.
    out.write(
        f"demo patients: {len(lines)}; sign in at /login/ with a PESEL below, the one-time code is printed "
        "on the console of `make run` and shown at /dev/outbox/"
    )


DAUGHTER_COMES_OF_AGE_IN = dt.timedelta(days=20)  # after the first run: then the age rule refuses
CHILD_REFERRAL_NUMBER = "DEMO491200000001"  # the son's paediatric cardiology e-referral (demo data only)
CHILD_REFERRAL_CODE = "4912"


def _born_years_ago(today: dt.date, years: int) -> dt.date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def _person(first: str, last: str, born: dt.date, sex: str, serial: int, *, contact: bool) -> Patient:
    # Found by name: the children's birth dates are relative to the first run, so their PESEL is too.
    existing = Patient.objects.filter(first_name=first, last_name=last).first()
    if existing is not None:
        return existing
    return Patient.objects.create(
        pesel=pesel.generate(born, sex, serial),
        first_name=first,
        last_name=last,
        birth_date=born,
        sex=sex,
        email=f"{first.lower()}.rodzina@demo.cer.invalid" if contact else "",
        phone=f"+48500000{serial % 1000:03d}" if contact else "",
        source=Patient.Source.REGISTRY,
    )


def _family(today: dt.date) -> list[str]:
    mother = _person("Anna", "Demo-Rodzina", dt.date(1986, 4, 20), "F", 4911, contact=True)
    son = _person("Jan", "Demo-Rodzina", _born_years_ago(today, 9), "M", 4912, contact=False)
    daughter_born = _born_years_ago(today + DAUGHTER_COMES_OF_AGE_IN, 18)
    # Her own contact details: once of age she signs in herself.
    daughter = _person("Ola", "Demo-Rodzina", daughter_born, "F", 4913, contact=True)
    grandmother = _person("Halina", "Demo-Rodzina", dt.date(1956, 2, 8), "F", 4914, contact=True)
    for child in (son, daughter):
        registry.relationship_record(
            representative=mother,
            patient=child,
            kind=Relationship.Kind.PARENT,
            valid_from=child.birth_date,
            reference=f"demo-parent-{child.pesel}",
        )
    registry.relationship_record(
        representative=mother,
        patient=grandmother,
        kind=Relationship.Kind.AUTHORISATION,
        valid_from=dt.date(2025, 1, 1),
        valid_to=dt.date(today.year + 1, 12, 31),
        reference=f"demo-authorisation-{grandmother.pesel}",
    )
    extra = ""
    service = Service.objects.filter(code="KARDIO_PED_1").first()
    if service is not None:
        referral = Referral.objects.filter(patient=son, service=service).first()
        if referral is None:
            referral = Referral.objects.create(
                number=CHILD_REFERRAL_NUMBER,
                access_code=CHILD_REFERRAL_CODE,
                patient=son,
                service=service,
                issued_on=today,
                valid_until=today + dt.timedelta(days=365),
            )
        extra = (
            f"; Jan's paediatric cardiology e-referral {referral.number}, access code {referral.access_code}"
        )
    line = (
        f"patient Anna Demo-Rodzina: PESEL {mother.pesel} (a parent: choose under 'Rezerwujesz dla' her son "
        f"Jan, 9, PESEL {son.pesel} (signing in with it says how a parent books), her daughter Ola, PESEL "
        f"{daughter.pesel}, of age on {eighteenth_birthday(daughter)} (then refused: she books herself), and "
        f"her mother Halina, PESEL {grandmother.pesel}, who authorised her){extra}"
    )
    credential_remember("patient:family", line)
    return [line]
