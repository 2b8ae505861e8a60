"""The bench runner's plumbing (no timings): the signed-in patient session it hands to the load
generator, the load generator's GET mode with paths and headers, and the command line."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from django.test import Client

from bench import loadgen
from bench.run import Sizes, _patient_session_cookie, main


def test_the_session_cookie_signs_the_patient_in_to_the_portal(patient):
    cookie = _patient_session_cookie()
    assert Client().get("/appointments/").status_code == 302  # not signed in: to the sign-in page
    response = Client(HTTP_COOKIE=cookie).get("/appointments/")
    assert response.status_code == 200
    patient.refresh_from_db()
    assert response.wsgi_request.user == patient.user


def test_the_load_generator_sends_the_headers_and_takes_the_paths_in_turn(live_server):
    url = urlparse(live_server.url)
    result = loadgen.run_get(
        {
            "host": url.hostname,
            "port": url.port,
            "threads": 2,
            "requests": 6,
            "warmup": 2,
            "paths": ["/api/v1/ping", "/healthz"],
            "headers": {"Accept": "application/json"},
        }
    )
    assert result["statuses"] == {200: 6}  # the 2 warm-up requests are not counted
    assert len(result["latencies"]) == 6


def test_only_accepts_the_known_workloads(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--only", "search,nonsense"])
    assert exit_info.value.code == 2
    assert "unknown workload(s) nonsense" in capsys.readouterr().err


def test_the_quick_run_is_smaller_than_the_full_one_which_publishes_a_million_slots_at_scale_one():
    quick, full = Sizes.for_run(quick=True, scale=0.005), Sizes.for_run(quick=False, scale=1.0)
    assert full.publish_per_call * full.publish_batches == 1_000_000
    assert Sizes.for_run(quick=False, scale=0.1).publish_batches == 10
    assert quick.storm_slots < full.storm_slots and quick.days < full.days


def test_make_bench_gets_its_own_embedded_database_and_odd_names_are_refused():
    from scripts.services import StartError, exec_arguments

    assert exec_arguments(["--database", "cer_bench", "--", "python", "-m", "bench.run"]) == (
        "cer_bench",
        ["python", "-m", "bench.run"],
    )
    assert exec_arguments(["--", "pytest"]) == ("cer", ["pytest"])
    for name in ("cer; DROP DATABASE cer", "Cer", "bąk"):
        with pytest.raises(StartError):
            exec_arguments(["--database", name, "--", "x"])


def test_the_storm_patients_of_every_run_have_new_pesels(db):
    from bench.run import _storm_patients

    first = {p.pesel for p in _storm_patients(5)}
    second = {p.pesel for p in _storm_patients(7)}  # another size than the run before

    assert len(first) == 5 and len(second) == 7 and not first & second
