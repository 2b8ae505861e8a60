"""Search: the earliest free first-time slots for a service. The hottest read of the system.

Plan: the partial index `slot_free_by_service (service_id, start) WHERE status='free' AND kind='first'`
(or `slot_free_by_voiv` with a voivodeship) is walked in start order; the bounding box and the
great-circle distance filter the rows it yields, and LIMIT stops the walk early. Plans are checked in
tests/scheduling/test_search.py and measured in bench/.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from django.db.models import FloatField, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from apps.catalog.models import Facility, Locality, Service, Voivodeship
from apps.core.dbrouter import replica_reads

from .models import Practitioner, Slot
from .services import WARSAW

EARTH_KM = 6371.0
# Great-circle distance (haversine) from a point, in km; parameters: lat, lat, lon.
DISTANCE_SQL = (
    "2 * 6371.0 * asin(sqrt(power(sin(radians(scheduling_slot.lat - %s) / 2), 2) + "
    "cos(radians(%s)) * cos(radians(scheduling_slot.lat)) * "
    "power(sin(radians(scheduling_slot.lon - %s) / 2), 2)))"
)


@dataclass(frozen=True)
class Near:
    lat: float
    lon: float
    radius_km: float

    def bounding_box(self) -> tuple[float, float, float, float]:
        dlat = self.radius_km / 111.0
        dlon = self.radius_km / (111.32 * max(math.cos(math.radians(self.lat)), 0.01))
        return self.lat - dlat, self.lat + dlat, self.lon - dlon, self.lon + dlon


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(math.sqrt(a))


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min).replace(tzinfo=WARSAW)


def slot_search_queryset(
    *,
    service: Service,
    voivodeship: Voivodeship | str | None = None,
    locality: Locality | None = None,
    near: Near | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    facility: Facility | None = None,
    practitioner: Practitioner | None = None,
    now: dt.datetime | None = None,
) -> QuerySet[Slot]:
    now = now or timezone.now()
    start_min = max(now, day_start(date_from)) if date_from else now
    qs = Slot.objects.filter(
        service=service, status=Slot.Status.FREE, kind=Slot.Kind.FIRST, start__gt=start_min
    )
    if date_to:
        qs = qs.filter(start__lt=day_start(date_to + dt.timedelta(days=1)))
    if voivodeship is not None:
        qs = qs.filter(voivodeship=voivodeship)
    if locality is not None and near is None:
        qs = qs.filter(locality=locality)
    if facility is not None:
        qs = qs.filter(facility=facility)
    if practitioner is not None:
        qs = qs.filter(practitioner=practitioner)
    if near is not None:
        lat_min, lat_max, lon_min, lon_max = near.bounding_box()
        qs = qs.filter(lat__range=(lat_min, lat_max), lon__range=(lon_min, lon_max))
        qs = qs.annotate(
            distance_km=RawSQL(DISTANCE_SQL, (near.lat, near.lat, near.lon), output_field=FloatField())  # noqa: S611
        ).filter(distance_km__lte=near.radius_km)
        return qs.order_by("start", "distance_km", "id")
    return qs.order_by("start", "id")


# What a search result shows (portal/_slot.html): loading only these keeps the hottest read's Python
# work (model instantiation of ~1 kB rows) close to the query's own cost (docs/performance.md).
SEARCH_RESULT_FIELDS = (
    "id",
    "start",
    "end",
    "service_id",
    "facility__name",
    "facility__address",
    "practitioner__name",
)


def slot_search(*, limit: int = 20, offset: int = 0, **filters: object) -> list[Slot]:
    """Earliest matching free slots, ordered by date then distance; `near` adds `distance_km`.
    The slots carry only SEARCH_RESULT_FIELDS (other fields load on access)."""
    limit = max(1, min(limit, 200))
    qs = (
        slot_search_queryset(**filters)  # type: ignore[arg-type]
        .select_related("facility", "practitioner")
        .only(*SEARCH_RESULT_FIELDS)
    )
    return _search_results(qs[offset : offset + limit])


@replica_reads(retry=True)  # a replica's lag is harmless here: booking re-checks in the database
def _search_results(qs: QuerySet[Slot]) -> list[Slot]:
    return list(qs)
