import datetime as dt

import pytest

from apps.catalog.models import Service
from apps.catalog.selectors import registration_obligatory_from, service_get, service_list_in_scope
from apps.catalog.services import reference_load
from apps.core.errors import DomainError
from tests.factories import FacilityFactory


@pytest.fixture
def catalogue(db):
    reference_load()


def codes(on):
    return set(service_list_in_scope(on=on).values_list("code", flat=True))


def test_the_first_scope_starts_on_2026_01_01(catalogue):
    assert codes(dt.date(2025, 12, 31)) == set()
    first = codes(dt.date(2026, 1, 1))
    assert {"KARDIO_1", "MAMMO_SCR", "CYTO_SCR", "HPV_SCR"} <= first
    assert "ENDO_1" not in first


def test_the_august_scope_joins_on_2026_08_01(catalogue):
    assert "ENDO_1" not in codes(dt.date(2026, 7, 31))
    assert {"ENDO_1", "NEFRO_1", "HEPATO_1"} <= codes(dt.date(2026, 8, 1))


def test_scope_is_data_moving_a_date_moves_the_scope(catalogue):
    Service.objects.filter(code="ENDO_1").update(
        cer_from=dt.date(2027, 1, 1), obligatory_from=dt.date(2027, 1, 1)
    )
    assert "ENDO_1" not in codes(dt.date(2026, 9, 1))
    assert "ENDO_1" in codes(dt.date(2027, 1, 1))


def test_reference_load_is_idempotent_and_keeps_rule_versions(catalogue):
    before = {s.code: s.rule_version for s in Service.objects.all()}
    reference_load()
    after = {s.code: s.rule_version for s in Service.objects.all()}
    assert before == after


def test_a_changed_eligibility_rule_gets_a_new_rule_version(catalogue):
    Service.objects.filter(code="MAMMO_SCR").update(age_min=50)
    reference_load()  # the fixture says 45 again: a change, so a new version
    mammo = Service.objects.get(code="MAMMO_SCR")
    assert mammo.age_min == 45
    assert mammo.rule_version == 2


def test_screening_rules_come_from_the_fixture(catalogue):
    mammo = Service.objects.get(code="MAMMO_SCR")
    assert (mammo.eligible_sex, mammo.age_min, mammo.age_max, mammo.interval_months) == ("F", 45, 74, 24)
    cyto = Service.objects.get(code="CYTO_SCR")
    assert (cyto.age_min, cyto.age_max, cyto.interval_months, cyto.interval_months_risk) == (25, 64, 36, 12)
    assert Service.objects.get(code="KARDIO_1").referral_required is True
    assert mammo.referral_required is False


def test_facility_obligation_is_the_later_of_service_and_facility_dates(catalogue):
    kardio = Service.objects.get(code="KARDIO_1")
    facility = FacilityFactory()
    assert registration_obligatory_from(service=kardio, facility=facility) == dt.date(2026, 7, 1)
    facility.obligatory_from = dt.date(2026, 10, 1)
    assert registration_obligatory_from(service=kardio, facility=facility) == dt.date(2026, 10, 1)


def test_an_unknown_service_is_a_domain_error(catalogue):
    with pytest.raises(DomainError) as exc:
        service_get(code="NOPE")
    assert exc.value.code == "unknown_service"
    assert "NOPE" in exc.value.message_in("pl")


def test_every_voivodeship_has_a_city(catalogue):
    from apps.catalog.models import Voivodeship

    assert Voivodeship.objects.count() == 16
    assert not Voivodeship.objects.filter(localities__isnull=True).exists()
