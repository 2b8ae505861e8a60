"""The booking body validated without a serializer instance (`booking_input`, issue 19) against the
`BookingCreateInput` serializer that defines the fields, their refusals and the schema: for valid and
hostile bodies alike, the same validated data or the same problem+json (field, code, message, in Polish
and in English)."""

import json

import pytest
from django.utils import translation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from apps.core.api_errors import problem_exception_handler
from apps.integration.apis.bookings import BookingCreateInput, booking_input, booking_input_plain

PLAIN = [
    {"slot_id": 123, "pesel": "44051401359", "channel": "desk"},
    {"slot_id": 1, "pesel": "70051712308", "channel": "phone", "referral_number": None},
    {"slot_id": 2**63 - 1, "pesel": "00000000000", "channel": "email", "referral_code": None},
    {
        "slot_id": 9,
        "pesel": "44051401359",
        "channel": "desk",
        "referral_number": "REF0000000001",
        "referral_code": "1234",
    },
    {"channel": "desk", "pesel": "44051401359", "slot_id": 5, "referral_number": "a" * 44},
]

HOSTILE = [
    None,
    [],
    "slot",
    12,
    {},
    [{"slot_id": 1, "pesel": "44051401359", "channel": "desk"}],
    {"slot_id": 1, "pesel": "44051401359"},
    {"pesel": "44051401359", "channel": "desk"},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "extra": 1},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "\ud800": 1},
    {"slot_id": True, "pesel": "44051401359", "channel": "desk"},
    {"slot_id": 0, "pesel": "44051401359", "channel": "desk"},
    {"slot_id": -1, "pesel": "44051401359", "channel": "desk"},
    {"slot_id": 2**63, "pesel": "44051401359", "channel": "desk"},
    {"slot_id": 10**4000, "pesel": "44051401359", "channel": "desk"},
    {"slot_id": 1.0, "pesel": "44051401359", "channel": "desk"},
    {"slot_id": 1.5, "pesel": "44051401359", "channel": "desk"},
    {"slot_id": float("nan"), "pesel": "44051401359", "channel": "desk"},
    {"slot_id": float("inf"), "pesel": "44051401359", "channel": "desk"},
    {"slot_id": "7", "pesel": "44051401359", "channel": "desk"},
    {"slot_id": " 7 ", "pesel": "44051401359", "channel": "desk"},
    {"slot_id": "7.0", "pesel": "44051401359", "channel": "desk"},
    {"slot_id": "1" * 1001, "pesel": "44051401359", "channel": "desk"},
    {"slot_id": None, "pesel": "44051401359", "channel": "desk"},
    {"slot_id": {"id": 1}, "pesel": "44051401359", "channel": "desk"},
    {"slot_id": [1], "pesel": "44051401359", "channel": "desk"},
    {"slot_id": 1, "pesel": 44051401359, "channel": "desk"},
    {"slot_id": 1, "pesel": " 44051401359 ", "channel": "desk"},
    {"slot_id": 1, "pesel": "4405140135\x00", "channel": "desk"},
    {"slot_id": 1, "pesel": "4405140135\ud800", "channel": "desk"},
    {"slot_id": 1, "pesel": "\uff14" * 11, "channel": "desk"},
    {"slot_id": 1, "pesel": "4405140135", "channel": "desk"},
    {"slot_id": 1, "pesel": "440514013590", "channel": "desk"},
    {"slot_id": 1, "pesel": "", "channel": "desk"},
    {"slot_id": 1, "pesel": None, "channel": "desk"},
    {"slot_id": 1, "pesel": ["44051401359"], "channel": "desk"},
    {"slot_id": 1, "pesel": "44051401359", "channel": "web"},
    {"slot_id": 1, "pesel": "44051401359", "channel": "waitlist"},
    {"slot_id": 1, "pesel": "44051401359", "channel": "DESK"},
    {"slot_id": 1, "pesel": "44051401359", "channel": " desk"},
    {"slot_id": 1, "pesel": "44051401359", "channel": ""},
    {"slot_id": 1, "pesel": "44051401359", "channel": 1},
    {"slot_id": 1, "pesel": "44051401359", "channel": None},
    {"slot_id": 1, "pesel": "44051401359", "channel": {"desk": True}},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_number": ""},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_number": "   "},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_number": " REF1 "},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_number": "REF-000 1"},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_number": "a" * 45},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_number": "R\x00"},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_number": "R\udfff"},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_number": 12345},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_number": 1.5},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_number": False},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_number": {"n": 1}},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_code": "123"},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_code": "12345"},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_code": "1234\n"},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_code": " 1234"},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_code": "12a4"},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_code": "\u0661\u0662\u0663\u0664"},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_code": 1234},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "referral_code": ""},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "patient": None},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "patient": {}},
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "patient": {"first_name": "A"}},
    {
        "slot_id": 1,
        "pesel": "44051401359",
        "channel": "desk",
        "patient": {"first_name": "A", "last_name": "B"},
    },
    {
        "slot_id": 1,
        "pesel": "44051401359",
        "channel": "desk",
        "patient": {"first_name": "A", "last_name": "N", "phone": "x", "email": "no", "age": 3},
    },
    {"slot_id": 1, "pesel": "44051401359", "channel": "desk", "patient": [{"first_name": "A"}]},
    {"slot_id": "x", "pesel": 1, "channel": 2, "referral_number": [], "referral_code": {}, "patient": "p"},
]


def _serializer(body):
    """What the serializer makes of a body: ("ok", validated data) or ("refused", its errors)."""
    serializer = BookingCreateInput(data=body)
    if serializer.is_valid():
        return "ok", dict(serializer.validated_data)
    return "refused", serializer.errors


def _lean(body):
    try:
        return "ok", dict(booking_input(body))
    except serializers.ValidationError as exc:
        return "refused", exc.detail


def _typed(value):
    """A value with the type of every part spelt out (True == 1 and 1.0 == 1 in Python)."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value, getattr(value, "code", None))


def _same_answer(body):
    plain = booking_input_plain(body)
    expected = _serializer(body)
    if plain is not None:  # the plain form is taken only when the serializer gives back the same data
        assert expected == ("ok", plain)
        assert _typed(plain) == _typed(expected[1])
    got = _lean(body)
    assert got == expected
    assert _typed(got) == _typed(expected)
    return got


def test_the_everyday_bodies_take_the_plain_path_with_the_serializers_data():
    for body in PLAIN:
        assert booking_input_plain(body) is not None, body
        assert _same_answer(body)[0] == "ok"


@pytest.mark.parametrize("language", ["pl", "en"])
def test_hostile_bodies_get_the_serializers_problem_json_in_one_language(language):
    with translation.override(language):
        for body in HOSTILE:
            assert booking_input_plain(body) is None, body
            if _same_answer(body)[0] == "ok":  # accepted after trimming or converting: the serializer's data
                continue
            with pytest.raises(serializers.ValidationError) as raised:
                booking_input(body)
            exc_lean = raised.value
            exc_serializer = serializers.ValidationError(_serializer(body)[1])
            lean = problem_exception_handler(exc_lean, {})
            expected = problem_exception_handler(exc_serializer, {})
            assert json.dumps(lean.data, sort_keys=True) == json.dumps(expected.data, sort_keys=True)
            assert lean.status_code == 400
            assert lean.data["code"] == "validation_error"


def test_the_plain_path_knows_every_field_of_the_serializer():
    """A field added to or changed in `BookingCreateInput` must be taught to `booking_input_plain` too
    (or left to the serializer): this fingerprint of what it assumes then fails."""
    fields = BookingCreateInput().fields
    assumed = {
        name: (
            type(field).__name__,
            field.required,
            field.allow_null,
            getattr(field, "min_value", None),
            getattr(field, "max_value", None),
            getattr(field, "min_length", None),
            getattr(field, "max_length", None),
            getattr(field, "trim_whitespace", None),
            sorted(getattr(field, "choices", None) or []),
        )
        for name, field in fields.items()
    }
    assert assumed == {
        "slot_id": ("IntegerField", True, False, 1, None, None, None, None, []),
        "pesel": ("CharField", True, False, None, None, 11, 11, True, []),
        "channel": ("ChoiceField", True, False, None, None, None, None, None, ["desk", "email", "phone"]),
        "referral_number": ("CharField", False, True, None, None, None, 44, True, []),
        "referral_code": ("RegexField", False, True, None, None, None, None, True, []),
        "patient": ("PatientInput", False, False, None, None, None, None, None, []),
    }
    patterns = [v.regex.pattern for v in fields["referral_code"].validators if hasattr(v, "regex")]
    assert patterns == ["^[0-9]{4}$"]


KEYS = st.sampled_from(
    ["slot_id", "pesel", "channel", "referral_number", "referral_code", "patient", "first_name", "x", ""]
)
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=50)  # NUL and lone surrogates included
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    ANY_TEXT,
    st.text("0123456789 \t\n-", max_size=13),
    st.sampled_from(["desk", "phone", "email", "web", "44051401359", "1234", "REF0000000001", ""]),
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3)
)
NEAR_VALID = st.fixed_dictionaries(
    {
        "slot_id": st.one_of(st.integers(min_value=-5, max_value=2**64), VALUES),
        "pesel": st.one_of(st.text("0123456789", min_size=10, max_size=12), VALUES),
        "channel": st.one_of(st.sampled_from(["desk", "phone", "email"]), VALUES),
    },
    optional={
        "referral_number": st.one_of(st.none(), st.text("REF0123456789-", max_size=46), VALUES),
        "referral_code": st.one_of(st.none(), st.text("0123456789", max_size=5), VALUES),
        "patient": VALUES,
        "extra": VALUES,
    },
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(NEAR_VALID, VALUES))
def test_any_body_gets_the_serializers_answer(body):
    _same_answer(body)
