"""Our rows as FHIR R4 resources (plain dicts, rendered as application/fhir+json).

The shapes follow FHIR R4 and, for Location, Schedule and Slot, the SMART Scheduling Links STU1
publisher guide (github.com/smart-on-fhir/smart-scheduling-links, specification.md): a Location has
an identifier, telecom and address; a Schedule names its Location in `actor`; a Slot carries the
`booking-deep-link` and `booking-phone` extensions. The tests validate every shape with the
independent `fhir.resources` R4B models.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from apps.catalog.models import Contract, Facility, Service
from apps.scheduling.models import Schedule, Slot

from .models import ServiceCoding
from .selectors import SLOT_STATUS_TO_FHIR

WARSAW = ZoneInfo("Europe/Warsaw")
CANONICAL = "https://cer.nfz.gov.pl/fhir"
SERVICE_SYSTEM = f"{CANONICAL}/CodeSystem/service-type"
FACILITY_SYSTEM = f"{CANONICAL}/sid/nfz-provider-code"
PESEL_SYSTEM = "urn:oid:2.16.840.1.113883.3.4424.1.1.616"  # PESEL, as in HL7 Poland's profiles
SMART = "http://fhir-registry.smarthealthit.org/StructureDefinition"
BOOKING_DEEP_LINK = f"{SMART}/booking-deep-link"
BOOKING_PHONE = f"{SMART}/booking-phone"


def instant(value: dt.datetime) -> str:
    """A FHIR instant with the Warsaw offset (SMART: "SHOULD reflect the local timezone offset")."""
    return value.astimezone(WARSAW).isoformat(timespec="seconds")


def state_code(teryt: str) -> str:
    """ISO 3166-2:PL voivodeship code: since 2018 it is the TERYT code (PL-14 = mazowieckie)."""
    return f"PL-{teryt}"


def service_concept(service: Service, codings: list[ServiceCoding] | None = None) -> dict[str, Any]:
    coding = [{"system": SERVICE_SYSTEM, "code": service.code, "display": service.name_pl}]
    coding += [
        {"system": c.system, "code": c.code, **({"display": c.display} if c.display else {})}
        for c in codings or []
    ]
    return {"coding": coding, "text": service.name_pl}


def location(facility: Facility, *, base: str) -> dict[str, Any]:
    telecom = [{"system": "url", "value": f"{base}/"}]
    if facility.phone:
        telecom.insert(0, {"system": "phone", "value": facility.phone})
    return {
        "resourceType": "Location",
        "id": str(facility.pk),
        "identifier": [{"system": FACILITY_SYSTEM, "value": facility.nfz_code}],
        "status": "active" if facility.active else "inactive",
        "name": facility.name,
        "telecom": telecom,
        "address": {
            "line": [facility.address],
            "city": facility.locality.name,
            "state": state_code(facility.voivodeship_id),
            "country": "PL",
        },
        "position": {"latitude": facility.lat, "longitude": facility.lon},
    }


def healthcare_service(contract: Contract, codings: list[ServiceCoding] | None = None) -> dict[str, Any]:
    service = contract.service
    return {
        "resourceType": "HealthcareService",
        "id": f"{contract.facility_id}-{service.pk}",
        "active": True,
        "providedBy": {"display": contract.facility.name},
        "type": [service_concept(service, codings)],
        "specialty": [{"text": service.specialty}],
        "location": [{"reference": f"Location/{contract.facility_id}"}],
        "name": service.name_pl,
        "referralMethod": [{"text": "e-skierowanie"}] if service.referral_required else [],
        "appointmentRequired": True,
    }


def schedule(row: Schedule, codings: list[ServiceCoding] | None = None) -> dict[str, Any]:
    actor: list[dict[str, Any]] = [
        {"reference": f"Location/{row.facility_id}"},
        {"reference": f"HealthcareService/{row.facility_id}-{row.service_id}"},
    ]
    if row.practitioner is not None:
        actor.append({"display": row.practitioner.name})
    out: dict[str, Any] = {
        "resourceType": "Schedule",
        "id": str(row.pk),
        "active": row.active,
        "serviceType": [service_concept(row.service, codings)],
        "actor": actor,
    }
    if row.place:
        out["comment"] = row.place
    return out


def deep_link(*, base: str, slot_id: int | str) -> str:
    """The patient page of this one slot: what, when and where, and its "choose this date" button; a
    patient who must sign in first comes back to it (the slot is not lost on the way)."""
    return f"{base}/slots/{slot_id}/"


def slot(row: Slot, *, base: str, phone: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Slot",
        "id": str(row.pk),
        "serviceType": [service_concept(row.service)],
        "schedule": {"reference": f"Schedule/{row.schedule_id}"},
        "status": SLOT_STATUS_TO_FHIR[row.status],
        "start": instant(row.start),
        "end": instant(row.end),
    }
    if row.status == Slot.Status.FREE:
        extension = [
            {
                "url": BOOKING_DEEP_LINK,
                "valueUrl": deep_link(base=base, slot_id=row.pk),
            }
        ]
        if phone:
            extension.append({"url": BOOKING_PHONE, "valueString": phone})
        out["extension"] = extension
    return out


APPOINTMENT_STATUS = {
    "booked": "booked",
    "confirmed": "booked",
    "attended": "fulfilled",
    "no_show": "noshow",
    "cancelled_by_patient": "cancelled",
    "cancelled_by_facility": "cancelled",
    "released": "cancelled",
    "rescheduled": "cancelled",
}


def appointment(row: Any) -> dict[str, Any]:
    """A booking as a facility system sees it (personal data: the caller audits each read)."""
    patient = row.patient
    out: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": str(row.pk),
        "meta": {"versionId": str(row.version)},
        "status": APPOINTMENT_STATUS[row.status],
        "serviceType": [service_concept(row.service)],
        "slot": [{"reference": f"Slot/{row.slot_id}"}],
        "start": instant(row.start),
        "created": instant(row.created_at),
        "participant": [
            {
                "actor": {
                    "identifier": {"system": PESEL_SYSTEM, "value": patient.pesel},
                    "display": f"{patient.first_name} {patient.last_name}",
                },
                "status": "accepted",
            },
            {"actor": {"reference": f"Location/{row.facility_id}"}, "status": "accepted"},
        ],
    }
    if row.reason is not None:
        out["cancelationReason"] = {"coding": [{"code": row.reason.code, "display": row.reason.name_pl}]}
    return out


def operation_outcome(*, code: str, diagnostics: str, error_code: str) -> dict[str, Any]:
    """FHIR's error body. `code` is from the IssueType value set; `error_code` our stable code."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": code,
                "details": {"coding": [{"system": f"{CANONICAL}/CodeSystem/error", "code": error_code}]},
                "diagnostics": diagnostics,
            }
        ],
    }


def searchset(*, resources: list[dict[str, Any]], base: str, self_url: str, next_url: str | None) -> dict:
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def code_system(services: list[Service]) -> dict[str, Any]:
    return {
        "resourceType": "CodeSystem",
        "id": "service-type",
        "url": SERVICE_SYSTEM,
        "name": "CeRServiceType",
        "title": "Usługi Centralnej e-Rejestracji",
        "status": "active",
        "content": "complete",
        "caseSensitive": True,
        "count": len(services),
        "concept": [
            {"code": s.code, "display": s.name_pl, "designation": [{"language": "en", "value": s.name_en}]}
            for s in services
        ],
    }
