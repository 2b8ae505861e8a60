from tests.portal.conftest import (  # noqa: F401
    _sms_outbox,
    mammo_schedule,
    mammo_slots,
    other_patient,
    reason_codes,
    woman,
)
