"""bench/search_page.py's plumbing (no timings): the places it adds once for a full page of grouped
results, and cases that each answer with the page they name."""

from __future__ import annotations

from django.utils import translation

from apps.catalog.models import Facility
from bench.search_page import TAG, _cases, _places_ensure, normalised
from tests.factories import LocalityFactory, ServiceFactory


def test_the_cases_answer_with_a_full_page_of_places_added_once(client, patient):
    ServiceFactory(), LocalityFactory()  # KARDIO_1 and the largest town
    _places_ensure()
    _places_ensure()
    assert Facility.objects.filter(nfz_code__startswith=TAG).count() == 12
    cases, who, _service = _cases()
    assert who == patient  # nothing booked or waiting for KARDIO_1
    pages = {}
    with translation.override("pl"):  # each page activates its language in this thread: put back after
        for label, (url, _signed_in, language) in cases.items():
            client.cookies["django_language"] = language
            pages[label] = client.get(url)
    assert {response.status_code for response in pages.values()} == {200}
    grouped = normalised(pages["grouped, anonymous, pl"].content.decode())
    assert grouped.count('<li class="card">') == 15 and 'value=""' in grouped
    assert (
        "<li" not in normalised(pages["no results, anonymous, en"].content.decode()).split("results-title")[1]
    )
