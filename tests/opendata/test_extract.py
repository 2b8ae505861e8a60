"""The research extract: no published cell covers fewer than k patients, and no suppressed value can
be recovered from the published row, column and grand totals (checked by an independent rank test:
a hidden value is recoverable exactly when its unit vector lies in the row space of the totals'
equations)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from fractions import Fraction

import pyarrow.parquet as pq
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.opendata.models import ResearchExtract
from apps.opendata.suppression import Table, suppress
from apps.staff.services import staff_group_ensure
from tests.factories import (
    AppointmentFactory,
    FacilityFactory,
    LocalityFactory,
    PatientFactory,
    RegistrationFactory,
    ScheduleFactory,
    ServiceFactory,
    SlotFactory,
    VoivodeshipFactory,
)
from tests.factories.staff import otp_verified

K = 10


def rank(rows: list[list[Fraction]]) -> int:
    """Rank by plain forward elimination (independent of the implementation's Gauss-Jordan)."""
    m = [r[:] for r in rows]
    r = 0
    width = len(m[0]) if m else 0
    for c in range(width):
        p = next((i for i in range(r, len(m)) if m[i][c] != 0), None)
        if p is None:
            continue
        m[r], m[p] = m[p], m[r]
        for i in range(r + 1, len(m)):
            if m[i][c] != 0:
                f = m[i][c] / m[r][c]
                m[i] = [a - f * b for a, b in zip(m[i], m[r], strict=True)]
        r += 1
    return r


def recoverable(published: dict, hidden: set) -> list:
    """Which hidden values the published totals determine. `published` maps each value name
    ("cell", r, c) / ("row", r) / ("col", c) / ("grand",) to its number; the equations are
    row = sum of its cells, column = sum of its cells, grand = sum of rows = sum of columns."""
    names = sorted(hidden, key=repr)
    index = {n: i for i, n in enumerate(names)}
    cells = [n for n in list(published) + names if n[0] == "cell"]
    rows = {n[1] for n in cells} | {n[1] for n in list(published) + names if n[0] == "row"}
    cols = {n[2] for n in cells} | {n[1] for n in list(published) + names if n[0] == "col"}
    equations = []
    for row in rows:
        equations.append([("row", row)] + [c for c in cells if c[1] == row])
    for col in cols:
        equations.append([("col", col)] + [c for c in cells if c[2] == col])
    equations.append([("grand",)] + [("row", r) for r in rows])
    equations.append([("grand",)] + [("col", c) for c in cols])
    matrix = []
    for terms in equations:
        coeffs = [Fraction(0)] * len(names)
        for position, term in enumerate(terms):
            if term in index:
                coeffs[index[term]] += 1 if position == 0 else -1
        if any(coeffs):
            matrix.append(coeffs)
    base = rank(matrix)
    found = []
    for name in names:
        unit = [Fraction(1 if n == name else 0) for n in names]
        if rank([*matrix, unit]) == base:
            found.append(name)
    return found


def table_from(cells: dict[tuple[str, tuple[str, str]], int]) -> Table:
    """A table whose patients are its appointments (one visit each), totals the sums."""
    rows: dict = {}
    cols: dict = {}
    for (r, c), n in cells.items():
        rows[r] = rows.get(r, 0) + n
        cols[c] = cols.get(c, 0) + n
    grand = sum(cells.values())
    return Table(
        k=K,
        grand={"patients": grand, "appointments": grand},
        cells={key: {"patients": n, "appointments": n} for key, n in cells.items()},
        row_totals={r: {"patients": n, "appointments": n} for r, n in rows.items()},
        col_totals={c: {"patients": n, "appointments": n} for c, n in cols.items()},
    )


def names_and_values(table: Table) -> dict:
    out = {("cell", r, c): v["appointments"] for (r, c), v in table.cells.items()}
    out |= {("row", r): v["appointments"] for r, v in table.row_totals.items()}
    out |= {("col", c): v["appointments"] for c, v in table.col_totals.items()}
    out[("grand",)] = table.grand["appointments"]
    return out


def check(table: Table, hidden: set) -> None:
    values = names_and_values(table)
    for name in values:
        patients = (
            table.cells[(name[1], name[2])]["patients"]
            if name[0] == "cell"
            else table.row_totals[name[1]]["patients"]
            if name[0] == "row"
            else table.col_totals[name[1]]["patients"]
            if name[0] == "col"
            else table.grand["patients"]
        )
        if name not in hidden:
            assert patients >= K, f"published {name} covers {patients} < k patients"
    published = {n: v for n, v in values.items() if n not in hidden}
    assert recoverable(published, hidden) == []


def test_a_single_small_cell_is_protected_by_a_rectangle_of_complementary_suppressions():
    cells = {
        ("14", ("45-54", "F")): 30,
        ("14", ("55-64", "F")): 25,
        ("12", ("45-54", "F")): 3,  # primary: < k
        ("12", ("55-64", "F")): 20,
    }
    table = table_from(cells)
    hidden = suppress(table)
    assert ("cell", "12", ("45-54", "F")) in hidden
    # Hiding only the small cell would let "row 12 total - the published cell" recover it.
    assert len([h for h in hidden if h[0] == "cell"]) >= 4 or ("row", "12") in hidden
    check(table, hidden)


def test_a_bridge_between_two_protected_groups_is_not_left_recoverable():
    """Two 2x2 groups of small cells are safe each; one more small cell linking them would be
    recoverable by subtracting sums of totals (a "bridge"): the degree rule alone misses it."""
    cells = {
        ("02", ("A", "F")): 4, ("02", ("B", "F")): 4, ("04", ("A", "F")): 4, ("04", ("B", "F")): 4,
        ("06", ("C", "F")): 4, ("06", ("D", "F")): 4, ("08", ("C", "F")): 4, ("08", ("D", "F")): 4,
        ("04", ("C", "F")): 5,
        ("02", ("E", "F")): 40, ("04", ("E", "F")): 40, ("06", ("E", "F")): 40, ("08", ("E", "F")): 40,
        ("10", ("A", "F")): 40, ("10", ("B", "F")): 40, ("10", ("C", "F")): 40, ("10", ("D", "F")): 40,
    }  # fmt: skip
    table = table_from(cells)
    hidden = suppress(table)
    check(table, hidden)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.tuples(st.sampled_from(["02", "04", "06", "08"]), st.sampled_from(["a", "b", "c", "d"])),
        st.integers(min_value=1, max_value=40),
        min_size=1,
        max_size=16,
    )
)
def test_no_random_table_publishes_a_small_cell_or_a_recoverable_one(raw):
    table = table_from({(r, (c, "F")): n for (r, c), n in raw.items()})
    check(table, suppress(table))


# --- end to end: the database, the command, CSV and Parquet, the staff page ----------------------


@pytest.fixture
def visits(db):
    """October 2026 visits: Warsaw and Kraków, women and men in two age bands, some cells small."""
    service = ServiceFactory(mammography=True)
    krakow = LocalityFactory(
        simc="0950463",
        name="Kraków",
        voivodeship=VoivodeshipFactory(teryt="12", name="małopolskie", name_en="Lesser Poland"),
        lat=50.06,
        lon=19.94,
    )
    places = {"14": ScheduleFactory(facility=FacilityFactory(), service=service)}
    places["12"] = ScheduleFactory(facility=FacilityFactory(locality=krakow), service=service)
    plan = {
        ("14", 1975, "F"): 12, ("14", 1965, "F"): 11, ("14", 1975, "M"): 3,
        ("12", 1975, "F"): 10, ("12", 1965, "F"): 4, ("12", 1975, "M"): 12,
    }  # fmt: skip
    start = dt.datetime(2026, 10, 5, 7, 0, tzinfo=dt.UTC)
    n = 0
    for (teryt, born, sex), count in plan.items():
        for i in range(count):
            n += 1
            slot_start = start + dt.timedelta(minutes=20 * n)
            slot = SlotFactory(
                schedule=places[teryt],
                start=slot_start,
                end=slot_start + dt.timedelta(minutes=20),
                status="booked",
            )
            patient = PatientFactory(birth_date=dt.date(born, 3, 1), sex=sex)
            registration = RegistrationFactory(
                patient=patient,
                service=service,
                status="closed",
                joined_at=slot_start - dt.timedelta(days=20),
            )
            status = "no_show" if i == 0 else ("cancelled_by_patient" if i == 1 else "attended")
            AppointmentFactory(slot=slot, registration=registration, status=status)
    return plan


def test_the_command_writes_csv_and_parquet_with_no_small_or_recoverable_cell(visits, tmp_path):
    out = io.StringIO()
    call_command(
        "research_extract", "--from", "2026-10-01", "--to", "2026-10-31", "--out", str(tmp_path), stdout=out
    )
    extract = ResearchExtract.objects.get()
    assert f"extract {extract.pk}:" in out.getvalue()
    text = (tmp_path / f"cer-research-extract-{extract.pk}.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    parquet = pq.read_table(tmp_path / f"cer-research-extract-{extract.pk}.parquet").to_pylist()
    assert len(parquet) == len(rows) == extract.rows
    published, hidden = {}, set()
    for row in rows:
        if row["voivodeship"] == "ALL" and row["age_band"] == "ALL":
            name = ("grand",)
        elif row["age_band"] == "ALL":
            name = ("row", row["voivodeship"])
        elif row["voivodeship"] == "ALL":
            name = ("col", (row["age_band"], row["sex"]))
        else:
            name = ("cell", row["voivodeship"], (row["age_band"], row["sex"]))
        if row["suppressed"] == "True":
            assert row["patients"] == row["appointments"] == row["no_show_rate"] == ""
            hidden.add(name)
        else:
            assert int(row["patients"]) >= K
            published[name] = int(row["appointments"])
    # The small cells (3 men in Warsaw, 4 women 55-64 in Kraków) are hidden, and so is enough else.
    assert ("cell", "14", ("45-54", "M")) in hidden
    assert ("cell", "12", ("55-64", "F")) in hidden
    assert recoverable(published, hidden) == []
    warsaw_women = next(
        r for r in rows if (r["voivodeship"], r["age_band"], r["sex"]) == ("14", "45-54", "F")
    )
    if warsaw_women["suppressed"] == "False":
        assert warsaw_women["no_show_rate"] == str(round(1 / 12, 3))
        assert warsaw_women["mean_wait_days"] == "20.0"
    by_parquet = {(r["voivodeship"], r["age_band"], r["sex"]): r for r in parquet}
    for row in rows:
        twin = by_parquet[(row["voivodeship"], row["age_band"], row["sex"])]
        assert twin["suppressed"] == (row["suppressed"] == "True")
        assert (twin["patients"] is None) == (row["patients"] == "")


def test_the_command_refuses_bad_input(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("research_extract", "--from", "2026-13-01", "--to", "2026-10-31")
    with pytest.raises(CommandError):
        call_command("research_extract", "--from", "2026-10-31", "--to", "2026-10-01")
    with pytest.raises(CommandError):
        call_command("research_extract", "--from", "2026-10-01", "--to", "2026-10-31", "--k", "1")
    assert not ResearchExtract.objects.exists()


def test_staff_download_the_extract_and_no_one_else_does(client, visits):
    call_command("research_extract", "--from", "2026-10-01", "--to", "2026-10-31", stdout=io.StringIO())
    extract = ResearchExtract.objects.get()
    url = f"/opendata/staff/extracts/{extract.pk}.csv"
    assert client.get(url).status_code == 302  # to the staff log-in
    patient = User.objects.create_user("patient-user", password="x-unused-x")
    client.force_login(patient)
    assert client.get(url).status_code == 403
    staff = User.objects.create_user("analyst", password="x-unused-x")
    staff.groups.add(staff_group_ensure())
    otp_verified(client, staff)  # staff pages sit behind the second factor
    page = client.get("/opendata/staff/extracts/")
    assert page.status_code == 200
    assert url in page.content.decode()
    download = client.get(url)
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    assert download.content == bytes(extract.csv)
    parquet = client.get(f"/opendata/staff/extracts/{extract.pk}.parquet")
    assert pq.read_table(io.BytesIO(parquet.content)).num_rows == extract.rows
    assert client.get(f"/opendata/staff/extracts/{extract.pk}.xlsx").status_code == 404
