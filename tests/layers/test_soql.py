"""SOQL built from input is always escaped, exactly as simple-salesforce's format_soql would."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from simple_salesforce.format import quote_soql_value

from salesforce_access import quote_like, quote_soql, soql


@pytest.mark.parametrize(
    "value",
    ["O'Brien", "back\\slash", 'say "hi"', "line\nbreak\ttab\r", "' OR Name != '", 42, 3.5, True, False, None,
     ["a", "b'c"], (1, 2), date(2024, 5, 1)],
)
def test_matches_simple_salesforce_quoting(value) -> None:
    assert quote_soql(value) == quote_soql_value(value)


def test_injection_attempt_stays_inside_the_literal() -> None:
    query = soql("SELECT Id FROM Account WHERE Name = {name}", name="x' OR Name != '")
    assert query == "SELECT Id FROM Account WHERE Name = 'x\\' OR Name != \\''"


def test_datetimes_are_rendered_in_utc_with_milliseconds_and_must_be_aware() -> None:
    paris = timezone(timedelta(hours=2))
    assert quote_soql(datetime(2024, 5, 1, 12, 30, 15, 123_999, tzinfo=paris)) == "2024-05-01T10:30:15.123Z"
    assert quote_soql(datetime(2024, 5, 1, 12, 30, 15, 999, tzinfo=paris)) == "2024-05-01T10:30:15.000Z"
    assert quote_soql(datetime(2024, 5, 1, tzinfo=UTC)) == "2024-05-01T00:00:00.000Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        quote_soql(datetime(2024, 5, 1))


def test_decimal_and_unsupported_types() -> None:
    assert quote_soql(Decimal("10.50")) == "10.50"
    with pytest.raises(TypeError):
        quote_soql(object())


def test_like_escapes_wildcards_and_quotes() -> None:
    assert quote_like("50%_off'") == "'50\\%\\_off\\''"
    assert soql("SELECT Id FROM Account WHERE Name LIKE {p:like}", p="a_b") == (
        "SELECT Id FROM Account WHERE Name LIKE 'a\\_b'"
    )


def test_field_names_are_validated() -> None:
    assert soql("SELECT {f:fields} FROM {o:field}", f=["Id", "Account.Name"], o="Contact") == (
        "SELECT Id, Account.Name FROM Contact"
    )
    with pytest.raises(ValueError, match="field"):
        soql("SELECT {f:field} FROM Account", f="Id FROM User --")
    with pytest.raises(ValueError, match="format spec"):
        soql("SELECT Id FROM Account WHERE Name = {n:literal}", n="x")


def test_a_stamp_read_back_matches_itself_to_the_millisecond(make_access, emu) -> None:
    """Key-set paging compares SystemModstamp with equality: the literal must keep the stored milliseconds."""
    access = make_access("client_credentials")
    name = f"ms-{datetime.now(UTC).timestamp()}"
    created = access.collections.create("Account", [{"Name": name}])[0]
    row = next(access.query(soql("SELECT Id, SystemModstamp FROM Account WHERE Id = {i}", i=created.id)))
    text = row["SystemModstamp"]  # 2024-05-01T10:30:15.123+0000
    stamp = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
    found = access.query(soql("SELECT Id FROM Account WHERE SystemModstamp = {s} AND Name = {n}", s=stamp, n=name))
    assert [r["Id"] for r in found] == [created.id]
    later = stamp + timedelta(milliseconds=1)
    assert list(access.query(soql("SELECT Id FROM Account WHERE SystemModstamp >= {s} AND Name = {n}",
                                  s=later, n=name))) == []
