import datetime as dt
import re

import pytest
from django.db import connection
from django.utils import timezone

from apps.scheduling.selectors import Near, distance_km, slot_search, slot_search_queryset
from tests.factories import FacilityFactory, LocalityFactory, ScheduleFactory, SlotFactory

KRAKOW = (50.0614, 19.9366)
TARNOW = (50.0121, 20.9858)  # ~75 km east of Kraków


@pytest.fixture
def places(db, cardiology):
    krakow = LocalityFactory(
        simc="9120001",
        name="Kraków",
        voivodeship__teryt="12",
        voivodeship__name="małopolskie",
        lat=KRAKOW[0],
        lon=KRAKOW[1],
    )
    tarnow = LocalityFactory(
        simc="9120002", name="Tarnów", voivodeship=krakow.voivodeship, lat=TARNOW[0], lon=TARNOW[1]
    )
    warszawa = LocalityFactory()
    f_krakow = FacilityFactory(locality=krakow)
    f_tarnow = FacilityFactory(locality=tarnow)
    f_waw = FacilityFactory(locality=warszawa)
    return {
        "krakow": krakow,
        "tarnow": tarnow,
        "warszawa": warszawa,
        "s_krakow": ScheduleFactory(facility=f_krakow, service=cardiology),
        "s_tarnow": ScheduleFactory(facility=f_tarnow, service=cardiology),
        "s_waw": ScheduleFactory(facility=f_waw, service=cardiology),
    }


def at(days, hour=9):
    return (timezone.localtime() + dt.timedelta(days=days)).replace(
        hour=hour, minute=0, second=0, microsecond=0
    )


def slot(schedule, days, hour=9, **kw):
    return SlotFactory(
        schedule=schedule, start=at(days, hour), end=at(days, hour) + dt.timedelta(minutes=20), **kw
    )


def test_earliest_first_and_only_free_first_time_slots(places, cardiology):
    later = slot(places["s_waw"], 5)
    earliest = slot(places["s_krakow"], 2)
    slot(places["s_krakow"], 1, status="booked")
    slot(places["s_krakow"], 1, hour=11, kind="follow_up")
    slot(places["s_krakow"], 1, hour=12, status="blocked")
    assert [s.pk for s in slot_search(service=cardiology)] == [earliest.pk, later.pk]


def test_filter_by_voivodeship_locality_window_facility(places, cardiology):
    k = slot(places["s_krakow"], 2)
    t = slot(places["s_tarnow"], 3)
    w = slot(places["s_waw"], 4)
    assert [s.pk for s in slot_search(service=cardiology, voivodeship=places["krakow"].voivodeship)] == [
        k.pk,
        t.pk,
    ]
    assert [s.pk for s in slot_search(service=cardiology, locality=places["tarnow"])] == [t.pk]
    window = slot_search(
        service=cardiology,
        date_from=timezone.localdate() + dt.timedelta(days=3),
        date_to=timezone.localdate() + dt.timedelta(days=3),
    )
    assert [s.pk for s in window] == [t.pk]
    assert [s.pk for s in slot_search(service=cardiology, facility=w.facility)] == [w.pk]


def test_distance_filters_and_orders_same_day_slots_by_distance(places, cardiology):
    tarnow_slot = slot(places["s_tarnow"], 2)
    krakow_slot = slot(places["s_krakow"], 2)
    near_50 = slot_search(service=cardiology, near=Near(*KRAKOW, radius_km=50))
    assert [s.pk for s in near_50] == [krakow_slot.pk]
    near_100 = slot_search(service=cardiology, near=Near(*KRAKOW, radius_km=100))
    assert [s.pk for s in near_100] == [krakow_slot.pk, tarnow_slot.pk]  # same time: nearer first
    assert near_100[1].distance_km == pytest.approx(distance_km(*KRAKOW, *TARNOW), rel=1e-6)
    assert 70 < near_100[1].distance_km < 80


def test_pagination(places, cardiology):
    made = [slot(places["s_krakow"], 1, hour=h) for h in range(8, 16)]
    page1 = slot_search(service=cardiology, limit=5)
    page2 = slot_search(service=cardiology, limit=5, offset=5)
    assert [s.pk for s in page1 + page2] == [s.pk for s in made]


@pytest.mark.parametrize(
    ("filters", "indexes"),
    [({}, {"slot_free_by_service"}), ({"voivodeship": "12"}, {"slot_free_by_voiv", "slot_free_by_service"})],
)
def test_search_can_walk_a_partial_free_slot_index_in_order(places, cardiology, filters, indexes):
    """Plans on national data are in bench/. Here, with scans that are not index scans and sorts
    priced out, the planner must still find a plan: proof that the query matches a partial index's
    predicate and that the index yields rows already in (start, id) order, so LIMIT stops early."""
    qs = slot_search_queryset(service=cardiology, **filters)[:20]
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        for knob in ("enable_seqscan", "enable_bitmapscan", "enable_sort", "enable_incremental_sort"):
            cursor.execute(f"SET LOCAL {knob} = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        # The slot table is partitioned by month: each partition's index is a child of the named one.
        cursor.execute(
            "SELECT c.relname, p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname IN ('slot_free_by_service', 'slot_free_by_voiv')"
        )
        parent_of = dict(cursor.fetchall())
    scans = set(re.findall(r"Index Scan using (\S+)", plan))
    used = {parent_of.get(name, name) for name in scans}
    assert used and used <= indexes, plan
    # No Sort node (a Merge Append of the partitions' index scans keeps the order: "Sort Key" only).
    assert not re.search(r"(^|->)\s*(Incremental )?Sort\s+\(", plan, re.MULTILINE), plan


def test_a_result_page_renders_from_one_query(places, cardiology, django_assert_num_queries):
    """Search loads only the shown columns; showing a result must not load the rest row by row."""
    from django.template.loader import render_to_string

    from tests.factories import PractitionerFactory

    practitioner = PractitionerFactory(facility=places["s_krakow"].facility)
    slot(places["s_krakow"], 2, practitioner=practitioner)
    slot(places["s_tarnow"], 3)
    with django_assert_num_queries(1):
        found = slot_search(service=cardiology, near=Near(*KRAKOW, radius_km=100))
        html = "".join(render_to_string("portal/_slot.html", {"slot": s}) for s in found)
    assert len(found) == 2
    assert practitioner.name in html and places["s_tarnow"].facility.name in html
