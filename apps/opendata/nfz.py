"""The NFZ "Terminy Leczenia" open API's `queues` resource shape (api-version 1.3), so clients already
written against https://api.nfz.gov.pl/app-itl-api/queues read ours unchanged.

Source of the shape: the API's published description (api.nfz.gov.pl/app-itl-api, documentation
v1.3 and its "Schematy" page: the `meta`/`links`/`data` envelope, the `queue`, `queue-attributes`
and `statistics` objects; the `case`, `province`, `benefit`, `locality`, `page`, `limit`, `format`
parameters; `province` is the NFZ branch number 01-16). Fields our data does not hold (REGON,
NIP, registry numbers, accessibility flags) are present and null, as NFZ itself sends missing values.
"""

from __future__ import annotations

import uuid
from typing import Any
from xml.etree import ElementTree as ET

from .models import QueueStat

API_VERSION = "1.3"
QUEUE_NAMESPACE = uuid.UUID("9c0f4f8e-6a3b-4f0e-9a51-2f1c1d1a0c16")  # ids are stable per queue
DEFAULT_LIMIT = 10
MAX_LIMIT = 25

# NFZ branches (province 01-16) are the voivodeships in alphabetical order; TERYT numbers the
# same order in steps of two (02 dolnośląskie ... 32 zachodniopomorskie).
NFZ_PROVINCE_TO_TERYT = {f"{n:02d}": f"{2 * n:02d}" for n in range(1, 17)}
TERYT_TO_NFZ_PROVINCE = {v: k for k, v in NFZ_PROVINCE_TO_TERYT.items()}


def queue_id(stat: QueueStat) -> str:
    return str(uuid.uuid5(QUEUE_NAMESPACE, f"{stat.facility_id}/{stat.service_id}/{stat.case}"))


def queue(stat: QueueStat) -> dict[str, Any]:
    facility = stat.facility
    return {
        "type": "queue",
        "id": queue_id(stat),
        "attributes": {
            "case": stat.case,
            "benefit": stat.service.name_pl.upper(),
            "many-places": "N",
            "provider": facility.name.upper(),
            "provider-code": facility.nfz_code,
            "regon-provider": None,
            "nip-provider": None,
            "teryt-provider": None,
            "place": facility.name.upper(),
            "address": facility.address.upper(),
            "locality": facility.locality.name.upper(),
            "phone": facility.phone or None,
            "teryt-place": facility.locality.simc,
            "registry-number": None,
            "id-resort-part-VII": None,
            "id-resort-part-VIII": None,
            "benefits-for-children": "N",
            "covid-19": "N",
            "toilet": None,
            "ramp": None,
            "car-park": None,
            "elevator": None,
            "latitude": facility.lat,
            "longitude": facility.lon,
            "statistics": {
                "provider-data": {
                    "awaiting": stat.awaiting,
                    "removed": stat.removed,
                    "average-period": stat.average_period_days,
                    "update": stat.stats_month,
                },
                "computed-data": None,
            },
            "dates": {
                "applicable": True,
                "date": stat.first_free_date.isoformat() if stat.first_free_date else None,
                "date-situation-as-at": stat.computed_at.date().isoformat(),
            },
            "benefits-provided": None,
        },
    }


def envelope(
    *,
    data: list[dict[str, Any]],
    count: int,
    page: int,
    limit: int,
    links: dict[str, str | None],
    modified: str,
) -> dict[str, Any]:
    return {
        "meta": {
            "@context": "https://api.nfz.gov.pl/app-itl-api/schemas/#queue",
            "count": count,
            "page": page,
            "limit": limit,
            "title": "queues",
            "provider": "Narodowy Fundusz Zdrowia - Centralna e-Rejestracja",
            "date-published": modified,
            "date-modified": modified,
            "description": "Pierwsze wolne terminy, liczba oczekujących i średni czas oczekiwania (CeR)",
            "keywords": "CeR, terminy leczenia, kolejki",
            "language": "PL",
            "content-type": "application/json; charset=utf-8",
            "message": None,
        },
        "links": links,
        "data": data,
    }


def _tag(name: str) -> str:
    cleaned = name.lstrip("@")
    return cleaned if cleaned and not cleaned[0].isdigit() else f"_{cleaned}"


def _to_xml(parent: ET.Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            child = ET.SubElement(parent, _tag(key))
            _to_xml(child, item)
    elif isinstance(value, list):
        for item in value:
            child = ET.SubElement(parent, "queue" if parent.tag == "data" else "item")
            _to_xml(child, item)
    elif value is None:
        parent.set("nil", "true")
    elif isinstance(value, bool):
        parent.text = "true" if value else "false"
    else:
        parent.text = str(value)


def to_xml(body: dict[str, Any]) -> bytes:
    """The same document as XML: one element per JSON member, `data` holding `queue` elements,
    null as an empty element with nil="true"."""
    root = ET.Element("queues")
    _to_xml(root, body)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
