import pytest

from apps.core.errors import MESSAGES, DomainError


@pytest.mark.parametrize("code", sorted(MESSAGES))
def test_every_error_code_has_a_status_and_both_languages(code):
    status, pl, en = MESSAGES[code]
    assert 400 <= status < 600
    assert pl and en and pl != en


def test_an_undeclared_code_cannot_be_raised():
    with pytest.raises(KeyError):
        DomainError("made_up_code")


def test_messages_are_formatted_with_params():
    error = DomainError("not_eligible_interval", last="2025-03-01", next="2027-03-01")
    assert "2027-03-01" in error.message_in("pl")
    assert "2027-03-01" in error.message_in("en")
    assert error.status == 409
