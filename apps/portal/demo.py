"""Demo patients for `make run`: sign in with their PESEL and the one-time code shown on the console
and on the development outbox page (/dev/outbox/). Idempotent: a second run changes nothing."""

from __future__ import annotations

import datetime as dt
from typing import TextIO

from django.db import transaction
from django.utils import timezone

from apps.catalog.models import Entitlement, Service
from apps.core import pesel
from apps.core.demo import credential_remember
from apps.patients.models import Patient, PatientEntitlement, Referral

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
    # The lines themselves are printed by seed_demo with the other demo log-ins.
    out.write(
        f"demo patients: {len(lines)}; sign in at /login/ with a PESEL below, the one-time code is printed "
        "on the console of `make run` and shown at /dev/outbox/"
    )
