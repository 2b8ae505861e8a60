import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.core import pesel

birth_dates = st.dates(min_value=dt.date(1800, 1, 1), max_value=dt.date(2299, 12, 31))
sexes = st.sampled_from(["M", "F"])
serials = st.integers(min_value=0, max_value=4999)


@given(birth_dates, sexes, serials)
def test_every_generated_pesel_parses_back_to_its_date_and_sex(birth, sex, serial):
    number = pesel.generate(birth, sex, serial)
    info = pesel.parse(number)
    assert (info.birth_date, info.sex) == (birth, sex)


@given(
    birth_dates, sexes, serials, st.integers(min_value=0, max_value=10), st.integers(min_value=1, max_value=9)
)
def test_changing_any_single_digit_is_detected(birth, sex, serial, position, delta):
    number = pesel.generate(birth, sex, serial)
    changed = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]
    # The 1-3-7-9 weights are coprime to 10, so every single-digit change breaks the check digit.
    with pytest.raises(pesel.InvalidPesel):
        pesel.parse(changed)


@given(st.text(max_size=15).filter(lambda s: not (len(s) == 11 and s.isascii() and s.isdigit())))
def test_anything_but_eleven_digits_is_refused(value):
    with pytest.raises(pesel.InvalidPesel, match="11 digits"):
        pesel.parse(value)


@given(birth_dates, sexes, serials)
def test_declared_sex_must_match_the_sex_digit(birth, sex, serial):
    number = pesel.generate(birth, sex, serial)
    other = "F" if sex == "M" else "M"
    with pytest.raises(pesel.InvalidPesel, match="sex digit"):
        pesel.parse(number, sex=other)


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("44051401359", None),  # the textbook example: 1944-05-14, male
        ("44051401358", "check digit"),
        ("02270803624", None),  # 2002-07-08, female (month + 20)
        ("99023012340", "check digit"),
    ],
)
def test_known_numbers(number, reason):
    if reason is None:
        assert pesel.is_valid(number)
    else:
        with pytest.raises(pesel.InvalidPesel, match=reason):
            pesel.parse(number)


def test_an_impossible_date_with_a_correct_check_digit_is_refused():
    first_ten = "9902300000"  # 30 February 1999
    with pytest.raises(pesel.InvalidPesel, match="impossible date"):
        pesel.parse(first_ten + str(pesel.check_digit(first_ten)))


def test_a_month_outside_every_century_block_is_refused():
    first_ten = "9913010000"  # month 13
    with pytest.raises(pesel.InvalidPesel, match="impossible"):
        pesel.parse(first_ten + str(pesel.check_digit(first_ten)))


def test_mask_shows_only_the_last_four_digits():
    assert pesel.mask("44051401359") == "*******1359"
