"""The import's hand-written SQL (`engine.visits_current`, `visits_insert`, `visits_correct`) against a
plain-ORM computation of the same result on generated data: new visits (some sent twice, some already
reported), the existing visits of a file's keys, and corrections and withdrawals with their kept
versions. The visits are in July and August, each month's own partition: about half of the corrections
move a visit to the other month."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from django.db import connection
from django.db.models import Q

from apps.core import partitions as core
from apps.core import pesel as pesel_lib
from apps.patients.models import Patient
from apps.reconciliation import engine
from apps.reconciliation.imports import VisitRow
from apps.reconciliation.models import ImportBatch, ReportedVisit, VisitKey, VisitVersion
from apps.reconciliation.partitions import VISITS
from tests.factories import FacilityFactory, PatientFactory, ServiceFactory
from tests.factories.reconciliation import ReportedVisitFactory, warsaw

pytestmark = pytest.mark.django_db

FIELDS = ("patient_pesel", "patient_id", "service_id", "visit_at", "emergency", "withdrawn", "version")


@pytest.fixture
def world(cardiology):
    core.partitions_ensure(VISITS, dt.date(2026, 7, 1), dt.date(2026, 8, 1))
    rng = random.Random(14)
    facilities = FacilityFactory.create_batch(3)
    services = [cardiology, ServiceFactory(mammography=True)]
    known = [p.pesel for p in PatientFactory.create_batch(6)]
    unknown = [pesel_lib.generate(dt.date(1950 + n, 1, 2), "F", 300 + n) for n in range(4)]
    # Visits the facilities reported before this file (the ORM writes them).
    existing = [
        ReportedVisitFactory(
            facility=rng.choice(facilities),
            service=rng.choice(services),
            facility_visit_id=f"V-{n}",
            patient_pesel=rng.choice(known),
            patient=None,
        )
        for n in range(8)
    ]
    batch = ImportBatch.objects.create(file_name="generated.csv", sha256="0" * 64, source="file")

    def row(line: int, facility, visit_id: str, **changes) -> VisitRow:
        values = {
            "pesel": rng.choice(known + unknown),
            "service_id": rng.choice(services).pk,
            "visit_at": warsaw(
                2026, rng.choice((7, 8)), rng.randint(1, 31), rng.randint(7, 18), rng.choice((0, 20, 40))
            ),
            "emergency": rng.random() < 0.2,
            **changes,
        }
        return VisitRow(line=line, facility_id=facility.pk, visit_id=visit_id, **values)

    return {"rng": rng, "facilities": facilities, "existing": existing, "batch": batch, "row": row}


def _state() -> dict[tuple[int, str], tuple]:
    return {
        (v["facility_id"], v["facility_visit_id"]): tuple(v[f] for f in FIELDS)
        for v in ReportedVisit.objects.values("facility_id", "facility_visit_id", *FIELDS)
    }


def _keys_and_partitions_follow_the_visits() -> None:
    """Every visit has its key, with its time, and sits in its month's partition."""
    visits = {v.pk: v.visit_at for v in ReportedVisit.objects.all()}
    assert dict(VisitKey.objects.values_list("visit_id", "visit_at")) == visits
    with connection.cursor() as cur:
        cur.execute("SELECT id, tableoid::regclass::text FROM reconciliation_reportedvisit")
        assert dict(cur.fetchall()) == {
            pk: VISITS.partition_name(core.month_of(at)) for pk, at in visits.items()
        }


def _patient_ids(pesels) -> dict[str, int]:
    return dict(Patient.objects.filter(pesel__in=set(pesels)).values_list("pesel", "id"))


def test_new_visits_match_the_orm(world):
    rng, facilities, row = world["rng"], world["facilities"], world["row"]
    rows = []
    for line in range(2, 60):
        if rng.random() < 0.15:  # a visit id already reported (kept as it was)
            old = rng.choice(world["existing"])
            rows.append(row(line, old.facility, old.facility_visit_id))
        elif rng.random() < 0.15 and rows:  # the same visit id twice in the file: the first line counts
            rows.append(
                row(line, next(f for f in facilities if f.pk == rows[-1].facility_id), rows[-1].visit_id)
            )
        else:
            rows.append(row(line, rng.choice(facilities), f"N-{line}"))
    before = _state()
    patients = _patient_ids(r.pesel for r in rows)
    expected = dict(before)
    for r in sorted(rows, key=lambda r: r.line):
        key = (r.facility_id, r.visit_id)
        if key not in expected:
            expected[key] = (r.pesel, patients.get(r.pesel), r.service_id, r.visit_at, r.emergency, False, 1)

    inserted = engine.visits_insert(batch_id=world["batch"].pk, rows=rows)

    assert _state() == expected
    assert inserted == len(expected) - len(before) > 20
    first_lines: dict[tuple[int, str], int] = {}
    for r in sorted(rows, key=lambda r: r.line):
        if (r.facility_id, r.visit_id) not in before:
            first_lines.setdefault((r.facility_id, r.visit_id), r.line)
    stored = ReportedVisit.objects.filter(batch=world["batch"]).values_list(
        "facility_id", "facility_visit_id", "source_row"
    )
    assert {(f, v): line for f, v, line in stored} == first_lines
    _keys_and_partitions_follow_the_visits()


def test_the_existing_visits_of_a_files_keys_match_the_orm(world):
    rng, row = world["rng"], world["row"]
    asked = [row(n, v.facility, v.facility_visit_id) for n, v in enumerate(rng.sample(world["existing"], 5))]
    asked += [row(99, world["facilities"][0], "NEVER-REPORTED")]

    found = dict(engine.visits_current(asked))

    keys = Q()
    for r in asked:
        keys |= Q(facility_id=r.facility_id, facility_visit_id=r.visit_id)
    orm = {
        v.pk: VisitRow(
            0,
            v.patient_pesel,
            v.facility_id,
            v.service_id,
            v.visit_at,
            v.emergency,
            v.facility_visit_id,
            v.withdrawn,
        )
        for v in ReportedVisit.objects.filter(keys)
    }
    assert found == orm and len(found) == 5


def test_corrections_and_withdrawals_match_the_orm(world):
    rng, row = world["rng"], world["row"]
    chosen = rng.sample(world["existing"], 6)
    corrections = [
        (
            v.pk,
            row(
                n + 2,
                v.facility,
                v.facility_visit_id,
                withdraw=n % 3 == 0,
                correction_reason=f"correction {n}",
            ),
        )
        for n, v in enumerate(chosen)
    ]
    untouched = {v.pk for v in world["existing"]} - {v.pk for v in chosen}
    before = {v.pk: v for v in ReportedVisit.objects.all()}
    patients = _patient_ids(r.pesel for _pk, r in corrections)

    corrected = engine.visits_correct(batch_id=world["batch"].pk, corrections=corrections)

    assert corrected == len(corrections)
    after = {v.pk: v for v in ReportedVisit.objects.all()}
    for pk, r in corrections:
        new, old = after[pk], before[pk]
        assert (new.patient_pesel, new.patient_id, new.service_id, new.visit_at, new.emergency) == (
            r.pesel,
            patients.get(r.pesel),
            r.service_id,
            r.visit_at,
            r.emergency,
        )
        assert (new.withdrawn, new.correction_reason, new.version, new.batch_id, new.source_row) == (
            r.withdraw,
            r.correction_reason,
            old.version + 1,
            world["batch"].pk,
            r.line,
        )
        kept = VisitVersion.objects.get(visit_id=pk)
        assert (
            kept.version,
            kept.patient_pesel,
            kept.service_id,
            kept.visit_at,
            kept.emergency,
            kept.withdrawn,
            kept.batch_id,
            kept.recorded_at,
        ) == (
            old.version,
            old.patient_pesel,
            old.service_id,
            old.visit_at,
            old.emergency,
            old.withdrawn,
            old.batch_id,
            old.version_at or old.created_at,
        )
        assert kept.current_visit_at == new.visit_at  # the copy followed the visit (ON UPDATE CASCADE)
    for pk in untouched:
        assert [getattr(after[pk], f) for f in FIELDS] == [getattr(before[pk], f) for f in FIELDS]
    assert VisitVersion.objects.count() == len(corrections)
    assert {r.visit_at.month for _pk, r in corrections} == {7, 8}  # some moved to August
    _keys_and_partitions_follow_the_visits()
