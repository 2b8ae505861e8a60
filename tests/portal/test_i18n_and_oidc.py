"""The Polish catalogue is complete and compiled; the national-login backend maps the PESEL claim."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from django.conf import settings

from apps.core import pesel
from apps.patients.models import Patient
from apps.portal.i18n import catalogues, mo_bytes, msgids_in_sources, po_parse
from apps.portal.oidc import NationalLoginBackend, patient_from_claims
from tests.factories import PatientFactory

ROOT = Path(settings.BASE_DIR)
# Our own sources only: other apps' templates keep their own catalogues.
SOURCES = [
    ROOT / "templates" / "portal",
    ROOT / "templates" / "emails",
    ROOT / "apps" / "portal",
    ROOT / "apps" / "notifications",
    *(ROOT / "templates" / name for name in ("404.html", "403.html", "403_csrf.html", "500.html")),
]


def test_every_ui_string_has_a_polish_translation():
    ((po, _mo),) = catalogues()
    translated = po_parse(po.read_text(encoding="utf-8"))
    used = msgids_in_sources(SOURCES) | msgids_in_sources([ROOT / "templates" / "base.html"])
    missing = used - set(translated)
    assert not missing, f"add to {po} and run manage.py portal_compilemessages: {sorted(missing)}"


def test_the_committed_mo_file_matches_its_po_source():
    for po, mo in catalogues():
        assert mo.read_bytes() == mo_bytes(po_parse(po.read_text(encoding="utf-8"))), (
            "run manage.py portal_compilemessages"
        )


def test_the_mo_file_is_readable_by_gettext(tmp_path):
    import gettext

    path = tmp_path / "x.mo"
    header = "Content-Type: text/plain; charset=UTF-8\n"
    path.write_bytes(mo_bytes({"": header, "Search": "Szukaj", "Zażółć": "gęślą jaźń"}))
    with path.open("rb") as handle:
        catalogue = gettext.GNUTranslations(handle)
    assert catalogue.gettext("Search") == "Szukaj" and catalogue.gettext("Zażółć") == "gęślą jaźń"


@pytest.mark.django_db
def test_national_login_maps_the_pesel_claim_to_the_existing_patient():
    patient = PatientFactory()
    backend = NationalLoginBackend.__new__(NationalLoginBackend)  # no OIDC settings needed for the mapping
    claims = {"pesel": patient.pesel, "given_name": "X"}
    assert backend.verify_claims(claims)
    user = backend.create_user(claims)
    patient.refresh_from_db()
    assert patient.user == user
    assert list(backend.filter_users_by_claims(claims)) == [user]


@pytest.mark.django_db
def test_national_login_creates_a_patient_on_first_sign_in_and_refuses_bad_claims():
    number = pesel.generate(dt.date(1985, 2, 3), "M", 7)
    patient = patient_from_claims(claims={"pesel": number, "given_name": "Jan", "family_name": "Nowak"})
    assert patient is not None and patient.sex == "M" and patient.birth_date == dt.date(1985, 2, 3)
    backend = NationalLoginBackend.__new__(NationalLoginBackend)
    assert not backend.verify_claims({"pesel": "12345678901"})
    assert not backend.verify_claims({"email": "a@b.c"})
    assert patient_from_claims(claims={"pesel": "12345678901"}) is None
    assert Patient.objects.count() == 1
