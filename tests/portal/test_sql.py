"""The search page's hand-written SQL (apps/portal/sql.py) against its plain-ORM twins: the same rows for
every area (none, a voivodeship, a town, a distance, both), time of day and date window (issue 19)."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest
import time_machine
from django.db.models import Exists, F, OuterRef, Subquery, Window
from django.db.models.functions import ExtractHour, RowNumber
from django.utils import timezone

from apps.catalog.models import Contract, Facility
from apps.patients.models import Patient
from apps.portal import sql
from apps.portal.selectors import TIMES_OF_DAY, _area, _matching
from apps.scheduling.models import Slot
from apps.scheduling.selectors import WARSAW, Near, day_start, slot_search_queryset
from tests.factories import (
    ContractFactory,
    FacilityFactory,
    LocalityFactory,
    PractitionerFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
    VoivodeshipFactory,
)

pytestmark = pytest.mark.django_db


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


@pytest.fixture
def country():
    service, other = ServiceFactory(), ServiceFactory(mammography=True)
    malopolskie = VoivodeshipFactory(teryt="12", name="małopolskie", name_en="Lesser Poland")
    warsaw = LocalityFactory()
    piaseczno = LocalityFactory(simc="0921410", name="Piaseczno", population=50_000, lat=52.081, lon=21.024)
    krakow = LocalityFactory(simc="0950463", name="Kraków", voivodeship=malopolskie, lat=50.06, lon=19.94)
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)

    def place(name, locality, *, contract=True, active=True, doctor=False, hours=(8, 13, 18), days=4, **slot):
        facility = FacilityFactory(name=name, locality=locality, active=active)
        if contract:
            ContractFactory(facility=facility, service=service)
        practitioner = PractitionerFactory(facility=facility) if doctor else None
        schedule = ScheduleFactory(facility=facility, service=service, practitioner=practitioner)
        for day, hour in itertools.product(range(days), hours):
            begin = start + dt.timedelta(days=day, hours=hour, minutes=len(name))
            SlotFactory(schedule=schedule, start=begin, end=begin + dt.timedelta(minutes=20), **slot)
        return facility

    place("Alfa", warsaw, doctor=True, hours=(8, 12, 16, 17, 23))  # the edges of the times of day
    place("Beta", piaseczno, hours=(9, 14))
    place("Gamma", krakow, hours=(19,))
    place("Delta", warsaw, hours=(19,))  # at the same times as Gamma
    place("No contract", warsaw)
    place("Closed", warsaw, active=False)
    place("Full", warsaw, status=Slot.Status.BOOKED)
    place("Follow-ups", warsaw, kind=Slot.Kind.FOLLOW_UP)
    later = place("Later", warsaw, days=1)
    Slot.objects.filter(facility=later).update(
        start=F("start") + dt.timedelta(days=9), end=F("end") + dt.timedelta(days=9)
    )
    other_schedule = ScheduleFactory(facility=Facility.objects.get(name="Alfa"), service=other)
    SlotFactory(
        schedule=other_schedule,
        start=start + dt.timedelta(hours=7),
        end=start + dt.timedelta(hours=7, minutes=20),
    )
    return {"service": service, "warsaw": warsaw, "malopolskie": malopolskie, "start": start}  # fmt: skip


def _areas(country):
    warsaw = country["warsaw"]
    near = Near(lat=warsaw.lat, lon=warsaw.lon, radius_km=30)
    return [
        (None, None, None),
        (warsaw.voivodeship, None, None),
        (country["malopolskie"], None, None),
        (None, warsaw, None),
        (None, warsaw, near),
        (warsaw.voivodeship, warsaw, near),
    ]


def _time_of_day(qs, time_of_day):
    if time_of_day not in TIMES_OF_DAY:
        return qs
    low, high = TIMES_OF_DAY[time_of_day]
    return qs.annotate(local_hour=ExtractHour("start", tzinfo=WARSAW)).filter(
        local_hour__gte=low, local_hour__lt=high
    )


def _orm_facilities(service, voivodeship, locality, near):
    facilities = Facility.objects.filter(
        Exists(Contract.objects.filter(facility=OuterRef("pk"), service=service)), active=True
    )
    if voivodeship is not None:
        facilities = facilities.filter(voivodeship=voivodeship)
    if near is not None:
        lat_min, lat_max, lon_min, lon_max = near.bounding_box()
        facilities = facilities.filter(lat__range=(lat_min, lat_max), lon__range=(lon_min, lon_max))
    elif locality is not None:
        facilities = facilities.filter(locality=locality)
    return facilities


def _matching_of(service, now, date_from, date_to, time_of_day):
    return sql.Matching(
        service_id=service.pk,
        start_after=max(now, day_start(date_from)) if date_from else now,
        start_before=day_start(date_to + dt.timedelta(days=1)) if date_to else None,
        hours=TIMES_OF_DAY.get(time_of_day or ""),
    )


def test_the_places_their_first_slots_and_a_page_of_their_earliest_slots_are_what_the_orm_reads(country):
    service, start = country["service"], country["start"]
    now = timezone.now()
    windows = [(None, None), (start.date() + dt.timedelta(days=1), start.date() + dt.timedelta(days=2))]
    checked = walked = ties = 0
    for (voivodeship, locality, near), time_of_day, (date_from, date_to) in itertools.product(
        _areas(country), [None, *TIMES_OF_DAY], windows
    ):
        area = _area(voivodeship, locality, near)
        orm_area = _orm_facilities(service, voivodeship, locality, near)
        # The ORM twin of each place's first slot: the queryset place_search composed before issue 19.
        any_hour = slot_search_queryset(service=service, date_from=date_from, date_to=date_to, now=now)
        matching_qs = _time_of_day(any_hour.order_by(), time_of_day)
        first = matching_qs.filter(facility=OuterRef("pk")).order_by("start").values("start")[:1]
        orm = orm_area.annotate(first=Subquery(first))
        expected = sorted((f.pk, f.first) for f in orm.filter(first__isnull=False))
        matching = _matching_of(service, now, date_from, date_to, time_of_day)
        every = [row[0] for row in sql.area_places(service_id=service.pk, area=area, named=0)]
        assert sorted(sql.first_slots(matching=matching, facility_ids=every)) == expected, (area, time_of_day)
        # The walk (not for a time of day): the first rows of the service's matching slots of every place,
        # by date, with every other at the time of the last; the places among them, first reached.
        if time_of_day is not None:
            with pytest.raises(ValueError):
                sql.walk_first_slots(matching=matching, rows=10)
        for rows in (1, 3, 10, 13, 1000) if time_of_day is None else ():
            read = list(any_hour.order_by("start", "id").values_list("facility_id", "start"))
            if len(read) > rows:
                read = [(facility_id, begin) for facility_id, begin in read if begin <= read[rows - 1][1]]
            firsts: dict[int, dt.datetime] = {}
            for facility_id, begin in read:
                firsts.setdefault(facility_id, begin)
            walk = sql.walk_first_slots(matching=matching, rows=rows)
            assert (sorted(walk.firsts), walk.walked, walk.last) == (
                sorted(firsts.items()),
                len(read),
                max((begin for _f, begin in read), default=None),
            ), (area, rows)
            walked += len(walk.firsts)
            ties += walk.walked > rows
        # A page of places: each with its first slots before the end of the window, by date then id.
        ids = [pk for pk, _first in expected]
        for window_end, per_place in [(start + dt.timedelta(days=2), 2), (start + dt.timedelta(days=30), 5)]:
            numbered = (
                matching_qs.filter(facility_id__in=ids, start__lt=window_end)
                .select_related("practitioner")
                .annotate(
                    rank=Window(RowNumber(), partition_by=[F("facility_id")], order_by=[F("start"), F("id")])
                )
                .filter(rank__lte=per_place)
                .order_by("start", "id")
            )
            facilities, slots = sql.page_places(
                matching=matching, facility_ids=ids, window_end=window_end, per_place=per_place
            )
            assert [(_fields(s), s.practitioner and _fields(s.practitioner)) for s in slots] == [
                (_fields(s), s.practitioner and _fields(s.practitioner)) for s in numbered
            ]
            assert {pk: _fields(f) for pk, f in facilities.items()} == {
                f.pk: _fields(f) for f in Facility.objects.filter(pk__in=ids)
            }
            assert all(s.facility is facilities[s.facility_id] for s in slots)
            checked += len(slots)
    assert checked > 50 and walked > 50 and ties  # the cases found slots, with and without a doctor


def test_a_page_of_places_keeps_a_place_whose_slots_went_meanwhile(country):
    service, start = country["service"], country["start"]
    full = Facility.objects.get(name="Full")
    matching = sql.Matching(service_id=service.pk, start_after=timezone.now())
    facilities, slots = sql.page_places(
        matching=matching, facility_ids=[full.pk], window_end=start + dt.timedelta(days=30), per_place=3
    )
    assert list(facilities) == [full.pk] and slots == []


def _generic_plan(statement: str, params: dict) -> str:
    """The plan PostgreSQL keeps for a prepared statement once it plans it generically (from the 6th
    run on a connection, when the generic plan looks no dearer): every bound value a parameter. Scans
    other than index scans are switched off, as they would lose on a national table and win on these
    small ones."""
    from django.db import connection

    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
    numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", statement)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("PREPARE generic AS " + numbered.replace("%", "%%"))
        try:
            arguments = ", ".join(["%s"] * len(names))
            cursor.execute(f"EXPLAIN EXECUTE generic({arguments})", [params[n] for n in names])
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE generic")


def _indexes_read(plan: str) -> set[str]:
    """The slot table's indexes the plan reads, by the parent's name (each month partition has its copy)."""
    from django.db import connection

    scanned = re.findall(r"Index (?:Only )?Scan using (\S+) on (scheduling_slot\S*)", plan)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT COALESCE(i.inhparent::regclass::text, x) FROM unnest(%s::text[]) x "
            "LEFT JOIN pg_inherits i ON i.inhrelid = x::regclass",
            [[index for index, _table in scanned]],
        )
        return {row[0] for row in cursor.fetchall()}


def _cte(plan: str, name: str) -> str:
    """The part of a plan under `CTE name`."""
    lines = plan.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == f"CTE {name}")
    indent = len(lines[at]) - len(lines[at].lstrip())
    part = itertools.takewhile(lambda line: len(line) - len(line.lstrip()) > indent, lines[at + 1 :])
    return "\n".join(part)


FREE_SLOT_INDEXES = {"slot_free_by_facility", "slot_free_by_service"}


def test_every_slot_statement_reads_the_free_slots_indexes_also_when_planned_generically(country):
    """At national size a place's whole schedule (every service, free or not) lies before its first
    free slot of the service: each probe must go straight to it, through `slot_free_by_facility`, and
    the walk must read the service's free slots in date order (`slot_free_by_service`) and stop. A
    partial index serves only a condition that implies its own (status = 'free' AND kind = 'first'),
    and a bound status does not in a generic plan: the probes then read every slot of every place."""
    service, start = country["service"], country["start"]
    every = list(Facility.objects.values_list("pk", flat=True))
    for time_of_day in (None, "evening"):
        matching = sql.Matching(
            service_id=service.pk,
            start_after=timezone.now(),
            start_before=start + dt.timedelta(days=30),
            hours=TIMES_OF_DAY.get(time_of_day or ""),
        )
        params = {**matching.params(), "facilities": every, "rows": 100, "per_place": 3, "limit": 10}
        params.update(window_end=start + dt.timedelta(days=14), facility=every[0], offset=0)
        probe = _generic_plan(sql._firsts_sql(matching.sql("s")), params)
        assert _indexes_read(probe) == {"slot_free_by_facility"}, probe
        # By place and date, then id: which of the two serves it best depends on the table's statistics.
        for statement in (sql._page_sql(matching.sql("s")), sql._place_slots_sql(matching.sql("s"))):
            plan = _generic_plan(statement, params)
            assert _indexes_read(plan) & FREE_SLOT_INDEXES == _indexes_read(plan) != set(), plan
        if time_of_day is not None:
            continue  # the walk is not for a time of day
        walk = _generic_plan(sql._walk_sql(matching.sql("s")), params)
        assert _indexes_read(walk) == {"slot_free_by_service"}, walk
        assert not re.search(r"^\s*(->\s+)?(Incremental )?Sort +\(cost", _cte(walk, "walk"), re.M), (
            walk
        )  # in order


def test_the_area_s_places_are_what_the_orm_reads(country):
    service = country["service"]
    cases = itertools.product(_areas(country), [2, 50, None], [0, 3, 100])
    for (voivodeship, locality, near), limit, named in cases:
        orm = _orm_facilities(service, voivodeship, locality, near).order_by("name", "pk")
        rows = list(orm.values_list("pk", "lat", "lon", "name", "locality__name"))
        if len(rows) > named:  # the names only of an area with few places
            rows = [(pk, lat, lon, None, None) for pk, lat, lon, _name, _town in rows]
        area = _area(voivodeship, locality, near)
        found = sql.area_places(service_id=service.pk, area=area, named=named, limit=limit)
        assert found == rows[:limit], (voivodeship, locality, near, limit, named)
    assert len(found) >= 3  # the last case: everything within 30 km of Warsaw


def _shown(slot) -> tuple:
    return _fields(slot), _fields(slot.facility), slot.practitioner and _fields(slot.practitioner)


def test_one_place_s_slots_page_by_page_are_what_the_orm_reads(country):
    service, start = country["service"], country["start"]
    alfa = Facility.objects.get(name="Alfa")
    windows = [(None, None), (start.date() + dt.timedelta(days=1), start.date() + dt.timedelta(days=2))]
    checked = 0
    cases = itertools.product([None, *TIMES_OF_DAY], windows, [0, 3])
    for time_of_day, (date_from, date_to), offset in cases:
        with time_machine.travel(timezone.now(), tick=False):  # one "now" for both
            orm = _time_of_day(
                slot_search_queryset(service=service, facility=alfa, date_from=date_from, date_to=date_to),
                time_of_day,
            ).select_related("facility", "practitioner")[offset : offset + 4]
            matching = _matching(service, date_from, date_to, time_of_day)
            slots = sql.place_slots(matching=matching, facility_id=alfa.pk, limit=4, offset=offset)
        assert [_shown(s) for s in slots] == [_shown(s) for s in orm]
        checked += len(slots)
    assert checked > 20


def test_the_signed_in_patient_and_their_live_registration_are_what_the_orm_reads(country):
    from apps.booking.models import LIVE_REGISTRATION, Registration
    from tests.factories import PatientFactory, RegistrationFactory
    from tests.factories.portal import SignedInPatientFactory

    service, other = country["service"], ServiceFactory(mammography=True)
    signed_in, without_user = SignedInPatientFactory(), PatientFactory()
    for user_id in (signed_in.user_id, signed_in.user_id + 1000):
        orm = Patient.objects.filter(user__pk=user_id).first()
        found = sql.patient_of_user(user_id=user_id)
        assert (found and _fields(found)) == (orm and _fields(orm))
    assert sql.patient_of_user(user_id=signed_in.user_id).pk == signed_in.pk
    for status in [*Registration.Status.values]:
        Registration.objects.all().delete()
        RegistrationFactory(patient=signed_in, service=service, status=status)
        RegistrationFactory(patient=signed_in, service=other, status=Registration.Status.WAITING)
        RegistrationFactory(patient=without_user, service=service, status=Registration.Status.WAITING)
        for patient, wanted in itertools.product((signed_in, without_user), (service, other)):
            orm = Registration.objects.filter(patient=patient, service=wanted, status__in=LIVE_REGISTRATION)
            found = sql.live_registration(patient_id=patient.pk, service_id=wanted.pk)
            assert (found and _fields(found)) == (orm.first() and _fields(orm.first())), (status, patient)
        assert (sql.live_registration(patient_id=signed_in.pk, service_id=service.pk) is None) == (
            status not in LIVE_REGISTRATION
        )


@pytest.mark.django_db
def test_the_search_form_s_town_is_an_index_probe_in_a_full_list_of_places(country):
    """TERYT's SIMC list has ~100,000 places: the town named on the form (any letter case) is found
    through the `locality_upper_name` expression index, not by reading them all."""
    from django.db import connection

    from apps.catalog.models import Locality

    Locality.objects.bulk_create(
        Locality(
            simc=f"9{i:06d}", name=f"Miejscowość {i}", voivodeship=country["malopolskie"], lat=50, lon=20
        )
        for i in range(5000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE catalog_locality")
    for in_voivodeship in (False, True):
        with connection.cursor() as cursor:
            cursor.execute(
                "EXPLAIN " + sql._locality_sql(in_voivodeship),
                {"name": "MIEJSCOWOŚĆ 4321", "voivodeship": country["malopolskie"].pk},
            )
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "locality_upper_name" in plan and "Seq Scan" not in plan, plan
    assert sql.locality_named(name="miejscowość 4321").simc == "9004321"


def test_the_search_form_s_town_is_what_the_orm_reads(country):
    from apps.catalog.models import Locality

    malopolskie = country["malopolskie"]
    LocalityFactory(simc="0950464", name="Piaseczno", voivodeship=malopolskie, population=900, lat=50, lon=20)
    for name, voivodeship in itertools.product(
        ["Warszawa", "warszawa", "PIASECZNO", "Kraków", "kraków", "Nowhere", "Warsz%"],
        [None, country["warsaw"].voivodeship_id, malopolskie.pk],
    ):
        orm = Locality.objects.filter(name__iexact=name)
        if voivodeship:
            orm = orm.filter(voivodeship=voivodeship)
        expected = orm.order_by("-population").first()
        found = sql.locality_named(name=name, voivodeship_id=voivodeship)
        assert (found and _fields(found)) == (expected and _fields(expected)), (name, voivodeship)
