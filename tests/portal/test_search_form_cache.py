"""The search form's reference choices kept in the process (issue 19): services and voivodeships are
listed, looked up and rendered without a query once loaded, the HTML is what Django renders, and a
change (also one rolled back) is seen at once."""

import pytest
from django.db import transaction
from django.utils import translation

from apps.catalog import reference_cache
from apps.catalog.models import Service
from apps.portal.forms import SearchForm
from tests.factories import ServiceFactory, VoivodeshipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Reference data as if loaded and committed before (the test's transaction never commits)."""
    with django_capture_on_commit_callbacks(execute=True):
        services = [ServiceFactory(name_pl=f"Usługa {i}", name_en=f"Service {i}") for i in range(3)]
        VoivodeshipFactory()
    return services


def _rendered(form: SearchForm) -> str:
    return str(form["service"]) + str(form["voivodeship"]) + str(form["time_of_day"]) + str(form["radius_km"])


def test_a_search_form_asks_nothing_of_the_reference_tables_once_loaded(committed, django_assert_num_queries):
    service = committed[1]
    _rendered(SearchForm({"service": str(service.pk)}))  # loads both tables
    with django_assert_num_queries(0):
        form = SearchForm({"service": str(service.pk)})
        assert form.is_valid(), form.errors
        assert form.cleaned_data["service"] == service
        html = _rendered(form)
    assert f'<option value="{service.pk}" selected>' in html
    with django_assert_num_queries(0):
        assert not SearchForm({"service": "999999"}).is_valid()  # not a service: the same refusal


def test_the_kept_html_is_what_django_renders_in_each_language(committed):
    service = committed[0]
    for language in ("pl", "en"):
        with translation.override(language):
            kept = _rendered(SearchForm({"service": str(service.pk), "time_of_day": "morning"}))
            reference_cache.SERVICES._changed()  # bypassed: rendered afresh from the database
            reference_cache.VOIVODESHIPS._changed()
            fresh = _rendered(SearchForm({"service": str(service.pk), "time_of_day": "morning"}))
            reference_cache.SERVICES.clear()
            reference_cache.VOIVODESHIPS.clear()
            assert kept == fresh
    assert "Service 0" in fresh


def test_a_change_is_seen_at_once_and_a_rolled_back_one_is_forgotten(committed):
    service = committed[2]
    _rendered(SearchForm({}))
    with transaction.atomic():
        Service.objects.filter(pk=service.pk).update(name_pl="stale")  # behind the cache's back
        stored = Service.objects.get(pk=service.pk)
        stored.name_pl = "Kardiologia dziecięca"
        stored.save()
        assert "Kardiologia dziecięca" in _rendered(SearchForm({}))
        transaction.set_rollback(True)
    assert "Kardiologia dziecięca" not in _rendered(SearchForm({}))
