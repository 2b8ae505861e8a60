"""The plain-SQL helpers of the hot paths read and write exactly what the ORM would."""

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Model
from django.forms.models import model_to_dict

from apps.audit.models import AccessLog
from apps.booking.models import Appointment
from apps.catalog.models import Service
from apps.core.queries import column_names, insert_rows, model_from_row, prepared_cursor, select_columns
from apps.patients.models import Patient
from tests.factories import AppointmentFactory, PatientFactory, ServiceFactory

pytestmark = pytest.mark.django_db


def _fields(obj: Model) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def _load(model: type[Model], pk: int) -> Model:
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {select_columns(model, 't')} FROM {table} t WHERE t.id = %s", [pk])
        row = cursor.fetchone()
    instance, end = model_from_row(model, row)
    assert end == len(row)
    return instance


def test_a_row_loads_into_the_same_instance_as_the_orm_gives_arrays_and_dates_included():
    service = ServiceFactory(reminder_offsets_days=[7, 1], interval_months=24, cer_from=dt.date(2025, 1, 1))
    loaded = _load(Service, service.pk)
    assert _fields(loaded) == _fields(Service.objects.get(pk=service.pk))
    assert loaded.reminder_offsets_days == [7, 1]
    assert loaded._state.adding is False and loaded._state.db == "default"


def test_json_columns_are_converted_like_the_orm_does():
    appointment = AppointmentFactory(allocation={"reason": "entitlement", "rank": [1, 2]})
    loaded = _load(Appointment, appointment.pk)
    assert loaded.allocation == {"reason": "entitlement", "rank": [1, 2]}
    assert _fields(loaded) == _fields(Appointment.objects.get(pk=appointment.pk))


def test_rows_of_a_joined_select_are_read_one_model_after_another():
    patient = PatientFactory()
    service = ServiceFactory()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {select_columns(Patient, 'p')}, {select_columns(Service, 's')} "
            "FROM patients_patient p, catalog_service s WHERE p.id = %s AND s.id = %s",
            [patient.pk, service.pk],
        )
        row = cursor.fetchone()
    loaded_patient, i = model_from_row(Patient, row)
    loaded_service, _ = model_from_row(Service, row, i)
    assert (loaded_patient.pesel, loaded_service.code) == (patient.pesel, service.code)


def test_inserted_rows_are_what_the_orm_would_have_written():
    patient = PatientFactory()
    kwargs = {"actor_type": "api_client", "actor_id": "c1", "patient": patient, "action": "GET /x"}
    by_orm = AccessLog.objects.create(**kwargs)
    assert insert_rows([AccessLog(**kwargs), AccessLog(**{**kwargs, "actor_id": "c2"})]) == 2
    rows = list(AccessLog.objects.order_by("id"))
    assert len(rows) == 3
    expected = model_to_dict(by_orm, exclude=["id"])
    assert model_to_dict(rows[1], exclude=["id"]) == expected
    assert rows[1].at is not None and rows[1].at >= by_orm.at  # auto_now_add applied
    assert rows[2].actor_id == "c2"
    assert insert_rows([]) == 0


def test_the_prepared_cursor_prepares_on_the_server_and_shares_the_orm_transaction():
    patient = PatientFactory()
    sql = "SELECT pesel FROM patients_patient WHERE id = %s"
    with prepared_cursor() as cursor:
        cursor.execute(sql, [patient.pk])
        assert cursor.fetchone() == (patient.pesel,)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [r[0] for r in cursor.fetchall()]
    assert any("WHERE id = $1" in s for s in prepared)
    # In the ORM's transaction: a row it wrote but has not committed is visible, and rolled back.
    with transaction.atomic():
        sid = transaction.savepoint()
        other = PatientFactory()
        with prepared_cursor() as cursor:
            cursor.execute(sql, [other.pk])
            assert cursor.fetchone() == (other.pesel,)
        transaction.savepoint_rollback(sid)
    assert not Patient.objects.filter(pk=other.pk).exists()


def test_column_names_are_the_cursors_read_once_per_statement():
    sql = "SELECT 1 AS one, 'x' AS two, NULL::date AS three"
    with prepared_cursor() as cursor:
        cursor.execute(sql)
        expected = tuple(column.name for column in cursor.description)
        assert column_names(cursor, sql) == expected == ("one", "two", "three")

    class NoDescription:
        @property
        def description(self):
            raise AssertionError("read again")

    assert column_names(NoDescription(), sql) == expected


def test_the_prepared_cursor_raises_djangos_errors():
    patient = PatientFactory()
    with pytest.raises(IntegrityError), transaction.atomic(), prepared_cursor() as cursor:
        cursor.execute(
            "INSERT INTO patients_patient (created_at, updated_at, pesel, first_name, last_name, birth_date,"
            " sex, email, phone, language, screening_risk_group)"
            " SELECT created_at, updated_at, pesel, first_name, last_name, birth_date, sex, email, phone,"
            " language, screening_risk_group FROM patients_patient WHERE id = %s",
            [patient.pk],
        )


def test_a_literal_is_a_plain_constant_of_the_code_and_nothing_else():
    from apps.core.queries import literal

    assert literal("waiting") == "'waiting'" and literal("no_show") == "'no_show'"
    for bad in ("", "x'; DROP TABLE t; --", "Waiting", "a b", "zażółć", "a\\b", 'a"b'):
        with pytest.raises(ValueError):
            literal(bad)


def test_a_connection_the_prepared_cursor_just_used_is_not_checked_again(monkeypatch):
    """CONN_HEALTH_CHECKS: Django checks a persistent connection with `SELECT 1` before its first use
    in a request. A statement of the prepared cursor that has just run is proof enough (a booking
    request's first statement is one): no second round trip."""
    checks = []
    usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or usable())
    assert connection.health_check_enabled

    connection.health_check_done = False  # a request begins (`close_if_unusable_or_obsolete`)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert checks == [1]

    connection.health_check_done = False
    with prepared_cursor() as cursor:
        cursor.execute("SELECT %s::int", [1])
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert checks == [1]  # not checked again

    connection.health_check_done = False
    with pytest.raises(IntegrityError), prepared_cursor() as cursor:
        raise IntegrityError("a block that failed proves nothing")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert checks == [1, 1]


def _insert_columns_reference(obj: Model) -> tuple[list[str], list]:
    """`insert_columns` as first written: every field asked through the connection proxy."""
    columns, params = [], []
    for field in obj._meta.local_concrete_fields:
        if field.primary_key and getattr(obj, field.attname) is None:
            continue
        value = field.pre_save(obj, add=True)
        if hasattr(value, "resolve_expression"):
            continue
        columns.append('"' + str(field.column).replace('"', '""') + '"')
        params.append(field.get_db_prep_save(value, connection))
    return columns, params


def test_insert_columns_are_the_fields_own_values_for_the_booking_rows_and_database_defaults(
    monkeypatch,
):
    import time_machine
    from django.db.models.expressions import DatabaseDefault

    from apps.booking.services._transitions import appointment_event_new, appointment_new, registration_new
    from apps.catalog.models import Facility
    from apps.core.queries import insert_columns
    from apps.scheduling.models import Slot
    from tests.factories import FacilityFactory, SlotFactory

    slot = Slot.objects.select_related("service", "facility").get(pk=SlotFactory().pk)
    patient = PatientFactory()
    now = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
    registration = registration_new(
        patient=patient, service=slot.service, referral=None, status="booked", now=now, entitlement=None
    )
    registration.pk = 41
    appointment = appointment_new(registration=registration, slot=slot, channel="desk", now=now)
    appointment.allocation = {"reason": "entitlement", "rank": [1, 2]}
    event = appointment_event_new(appointment, "appointment.booked")  # the id left to the database
    log = AccessLog(actor_type="api_client", actor_id="c1", patient=patient, action="POST /x")
    made = FacilityFactory()
    kept = [f.attname for f in Facility._meta.concrete_fields if f.attname not in ("id", "postcode")]
    facility = Facility(**{name: getattr(made, name) for name in kept})
    assert isinstance(facility.postcode, DatabaseDefault)  # not given: the column's DEFAULT applies

    def comparable(built: tuple[list[str], list]) -> tuple[list[str], list]:
        columns, params = built  # JSON adapters compare by identity: by type and content instead
        return columns, [(type(p), p.obj) if hasattr(p, "obj") else (type(p), p) for p in params]

    with time_machine.travel(now, tick=False):  # auto_now values: the same moment for both
        for obj in (registration, appointment, event, log, facility):
            assert comparable(insert_columns(obj)) == comparable(_insert_columns_reference(obj)), type(obj)
    columns, _ = insert_columns(facility)
    assert '"postcode"' not in columns and '"id"' not in columns
    assert '"id"' in insert_columns(registration)[0] and '"id"' not in insert_columns(event)[0]


def test_an_outer_joined_model_is_none_where_its_key_is_null_and_the_columns_are_passed_over():
    from apps.core.queries import optional_model_from_row

    patient, service = PatientFactory(), ServiceFactory()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {select_columns(Service, 's')}, {select_columns(Patient, 'p')}, 7 "
            "FROM patients_patient p LEFT JOIN catalog_service s ON s.id = %s WHERE p.id = %s",
            [0, patient.pk],
        )
        missing = cursor.fetchone()
        cursor.execute(
            f"SELECT {select_columns(Service, 's')}, {select_columns(Patient, 'p')}, 7 "
            "FROM patients_patient p LEFT JOIN catalog_service s ON s.id = %s WHERE p.id = %s",
            [service.pk, patient.pk],
        )
        found = cursor.fetchone()

    none, i = optional_model_from_row(Service, missing)
    assert none is None and model_from_row(Patient, missing, i)[0].pk == patient.pk
    loaded, i = optional_model_from_row(Service, found)
    assert _fields(loaded) == _fields(Service.objects.get(pk=service.pk))
    loaded_patient, end = model_from_row(Patient, found, i)
    assert loaded_patient.pk == patient.pk and found[end] == 7
