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


def test_places_with_their_first_slot_and_their_earliest_slots_are_what_the_orm_reads(country):
    service, start = country["service"], country["start"]
    now = timezone.now()
    windows = [(None, None), (start.date() + dt.timedelta(days=1), start.date() + dt.timedelta(days=2))]
    checked = 0
    for (voivodeship, locality, near), time_of_day, (date_from, date_to) in itertools.product(
        _areas(country), [None, *TIMES_OF_DAY], windows
    ):
        # The ORM twin: the querysets place_search composed before issue 19.
        matching_qs = _time_of_day(
            slot_search_queryset(service=service, date_from=date_from, date_to=date_to, now=now).order_by(),
            time_of_day,
        )
        first = matching_qs.filter(facility=OuterRef("pk")).order_by("start").values("start")[:1]
        orm = _orm_facilities(service, voivodeship, locality, near).annotate(first=Subquery(first))
        expected = sorted((f.pk, f.first) for f in orm.filter(first__isnull=False))
        matching = sql.Matching(
            service_id=service.pk,
            start_after=max(now, day_start(date_from)) if date_from else now,
            start_before=day_start(date_to + dt.timedelta(days=1)) if date_to else None,
            hours=TIMES_OF_DAY.get(time_of_day or ""),
        )
        found = sql.places_with_first(matching=matching, area=_area(voivodeship, locality, near))
        assert sorted((f.pk, first) for f, first in found) == expected, (voivodeship, locality, time_of_day)
        for facility, _first in found:
            assert _fields(facility) == _fields(Facility.objects.get(pk=facility.pk))
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
            slots = sql.earliest_slots(
                matching=matching, facility_ids=ids, window_end=window_end, per_place=per_place
            )
            assert [(_fields(s), s.practitioner and _fields(s.practitioner)) for s in slots] == [
                (_fields(s), s.practitioner and _fields(s.practitioner)) for s in numbered
            ]
            checked += len(slots)
    assert checked > 50  # the cases found slots, with and without a doctor


def test_the_places_probe_reads_each_places_first_free_slot_from_the_free_slots_index(country):
    """At national size a place's whole schedule (every service, free or not) lies before its first
    free slot of the service: the probe must go straight to it, through `slot_free_by_facility` in
    every month partition (each partition's copy of the parent's index). Scans other than index scans
    are switched off, as they would lose on a national table and win on this small one."""
    from django.db import connection

    matching = sql.Matching(service_id=country["service"].pk, start_after=timezone.now())
    area = _area(None, None, None)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(
            "EXPLAIN " + sql._first_sql(matching.sql("s"), sql._in_area(area)),
            {**matching.params(), **area.params()},
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
        scanned = re.findall(r"Index (?:Only )?Scan using (\S+) on (scheduling_slot\S*)", plan)
        assert scanned, plan
        cursor.execute(
            "SELECT DISTINCT COALESCE(i.inhparent::regclass::text, x) FROM unnest(%s::text[]) x "
            "LEFT JOIN pg_inherits i ON i.inhrelid = x::regclass",
            [[index for index, _table in scanned]],
        )
        assert [row[0] for row in cursor.fetchall()] == ["slot_free_by_facility"], plan


def test_the_area_s_places_are_what_the_orm_reads(country):
    service = country["service"]
    for (voivodeship, locality, near), limit in itertools.product(_areas(country), [2, 50]):
        orm = list(_orm_facilities(service, voivodeship, locality, near).select_related("locality")
                   .order_by("name", "pk")[:limit])  # fmt: skip
        found = sql.facilities_in_area(
            service_id=service.pk, area=_area(voivodeship, locality, near), limit=limit
        )
        assert [(_fields(f), _fields(f.locality)) for f in found] == [
            (_fields(f), _fields(f.locality)) for f in orm
        ], (voivodeship, locality, near, limit)
    assert len(found) >= 3  # the last case: everything within 30 km of Warsaw, up to 50


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
