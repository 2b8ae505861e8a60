"""Time handled kindly and a child's PESEL (issue 18): date fields accept what their hint says, the
repeated autumn hour says which one it is, and a child's PESEL is told how to book instead of a decoy
"code sent" page."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import translation

from apps.core import pesel
from apps.notifications.channels import MemorySmsGateway
from apps.portal.templatetags.portal import wall_time
from tests.factories import PatientFactory, ScheduleFactory, SlotFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC


def test_the_repeated_autumn_hour_says_summer_or_winter_time():
    # 31 Oct 2027: 03:00 CEST goes back to 02:00 CET, so 02:00-02:59 happens twice.
    first = dt.datetime(2027, 10, 31, 0, 20, tzinfo=UTC)  # 02:20 CEST
    second = dt.datetime(2027, 10, 31, 1, 20, tzinfo=UTC)  # 02:20 CET
    with translation.override("pl"):
        assert wall_time(first) == "02:20 (czas letni)" and wall_time(second) == "02:20 (czas zimowy)"
        assert wall_time(dt.datetime(2027, 10, 31, 2, 20, tzinfo=UTC)) == "03:20"  # once only: no mark
        assert wall_time(dt.datetime(2027, 3, 28, 0, 40, tzinfo=UTC)) == "01:40"
    with translation.override("en"):
        assert wall_time(first) == "02:20 (summer time)" and wall_time(second) == "02:20 (winter time)"


def test_search_results_mark_the_repeated_hour(client, mammography, facility_a):
    from tests.factories import ContractFactory

    ContractFactory(facility=facility_a, service=mammography)
    schedule = ScheduleFactory(facility=facility_a, service=mammography)
    warsaw = ZoneInfo("Europe/Warsaw")
    for fold in (0, 1):
        start = dt.datetime(2027, 10, 31, 2, 20, tzinfo=warsaw, fold=fold).astimezone(UTC)
        SlotFactory(schedule=schedule, start=start, end=start + dt.timedelta(minutes=20))
    body = client.get(reverse("portal:home"), {"service": mammography.pk, "date_from": "30.10.2027"}).content
    text = body.decode()
    assert "02:20 (czas letni)" in text and "02:20 (czas zimowy)" in text


def test_date_fields_accept_what_their_hint_says(client, mammography):
    page = client.get(reverse("portal:home"), {"service": mammography.pk, "date_from": "05.03.2027"})
    form = page.context["form"]
    assert form.is_valid() and form.cleaned_data["date_from"] == dt.date(2027, 3, 5)
    text = page.content.decode()
    assert "Format: DD.MM.RRRR, np. 05.03.2027" in text and 'value="05.03.2027"' in text
    assert 'type="date"' not in text  # the browser's own picker showed another order than the hint
    iso = client.get(reverse("portal:home"), {"service": mammography.pk, "date_from": "2027-03-05"})
    assert iso.context["form"].cleaned_data["date_from"] == dt.date(2027, 3, 5)


def test_a_childs_pesel_is_told_how_to_book_not_sent_to_a_decoy_code_page(client):
    child = PatientFactory(
        birth_date=dt.date.today().replace(year=dt.date.today().year - 8), phone="", email=""
    )
    response = client.post(reverse("portal:login"), {"pesel": child.pesel})
    assert response.status_code == 200  # not the "we sent you a code" page
    assert "Dziecko poniżej 18 lat nie loguje się własnym numerem PESEL" in response.content.decode()
    assert not MemorySmsGateway.outbox
    # Told from the number alone: an unregistered child's PESEL gets the same answer.
    unknown = pesel.generate(dt.date(2019, 6, 1), "M", 4321)
    again = client.post(reverse("portal:login"), {"pesel": unknown})
    assert "Dziecko poniżej 18 lat" in again.content.decode()
