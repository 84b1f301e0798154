"""The emulator's SOQL subset: results over a small in-memory org, and refusal of everything outside it."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from salesforce_emulator.errors import ApiError
from salesforce_emulator.ids import case_safe
from salesforce_emulator.schema import load_schema
from salesforce_emulator.soql import execute, parse, row_values

SCHEMA = load_schema()
NOW = datetime(2024, 5, 10, 15, 30, tzinfo=UTC)


def rid(prefix: str, n: int) -> str:
    return case_safe(f"{prefix}{n:012d}")


def record(prefix: str, n: int, **fields: object) -> dict:
    return {"Id": rid(prefix, n), "IsDeleted": False, **fields}


ADA = rid("005", 1)
ACME, GLOBEX, INITECH, UMBRELLA, HOOLI = (rid("001", n) for n in range(1, 6))
O1, O2, O3 = (rid("801", n) for n in range(1, 4))

RECORDS = [
    record("005", 1, Name="Ada Admin", LastName="Admin", IsActive=True),
    record("001", 1, Name="Acme", Industry="Technology", NumberOfEmployees=100, AnnualRevenue=5000000.0,
           OwnerId=ADA, ERP_Customer_Id__c="ERP-1", CreatedDate="2024-05-10T00:00:00.000+0000",
           Description="long text"),
    record("001", 2, Name="Globex", Industry="Retail", NumberOfEmployees=50, AnnualRevenue=250000.5,
           ParentId=ACME, ERP_Customer_Id__c="ERP-2", CreatedDate="2024-05-09T23:59:59.999+0000"),
    record("001", 3, Name="Initech 100%_off", CreatedDate="2024-05-03T00:00:00.000+0000"),
    {**record("001", 4, Name="Umbrella", Industry="Technology", NumberOfEmployees=10,
              CreatedDate="2024-04-01T12:00:00.000+0000"), "IsDeleted": True},
    record("001", 5, Name="Hooli", Industry="Technology", NumberOfEmployees=100,
           CreatedDate="2024-05-11T00:00:00.000+0000"),
    record("003", 1, LastName="Smith", AccountId=ACME, Title='Line1\nLine2\t"Q"'),
    record("003", 2, LastName="O'Brien", AccountId=GLOBEX),
    record("003", 3, LastName="Jones"),
    record("003", 4, LastName="back\\slash"),
    record("801", 1, AccountId=ACME, OrderNumber="00000001", EffectiveDate="2024-05-01", Status="Draft"),
    record("801", 2, AccountId=GLOBEX, OrderNumber="00000002", EffectiveDate="2024-05-10", Status="Activated"),
    record("801", 3, AccountId=ACME, OrderNumber="00000003", EffectiveDate="2024-05-12", Status="Draft"),
    record("a01", 1, Name="S-1", Order__c=O1, Status_Updated_At__c="2024-05-10T08:00:00.000+0000"),
    record("a01", 2, Name="S-2", Status_Updated_At__c="2024-05-09T10:00:00.000+0000"),
]


class FakeSource:
    """Records in memory. scan ignores include_deleted on purpose, so execute's own filtering is what's tested."""

    def __init__(self, records: list[dict]):
        self.records = records
        self.by_id = {r["Id"]: r for r in records}
        self.scans: list[tuple[str, bool]] = []

    def scan(self, sobject: str, include_deleted: bool) -> list[dict]:
        self.scans.append((sobject, include_deleted))
        obj = SCHEMA.get(sobject)
        assert obj is not None
        return [r for r in self.records if r["Id"].startswith(obj.key_prefix)]

    def get(self, record_id: str) -> dict | None:
        return self.by_id.get(record_id)


def run(soql: str, *, include_deleted: bool = False, now: datetime = NOW) -> tuple[int, list[dict]]:
    return execute(parse(soql, SCHEMA), FakeSource(RECORDS), include_deleted=include_deleted,
                   api_version="59.0", now=now)


def names(where: str, sobject: str = "Account", field: str = "Name", *, include_deleted: bool = False,
          now: datetime = NOW) -> list[object]:
    """The `field` of the rows matching `where`, in `field` order."""
    soql = f"SELECT {field} FROM {sobject} WHERE {where} ORDER BY {field}"  # noqa: S608 - SOQL under test, not SQL
    _, rows = run(soql, include_deleted=include_deleted, now=now)
    return [row[field] for row in rows]


def error(soql: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse(soql, SCHEMA)
    assert caught.value.status == 400
    return caught.value


def url(sobject: str, record_id: str) -> str:
    return f"/services/data/v59.0/sobjects/{sobject}/{record_id}"


# ----------------------------------------------------------------------------------------- parse result


def test_query_exposes_object_columns_limit_and_offset():
    query = parse("select id, NAME, owner.NAME from ACCOUNT limit 5 offset 1", SCHEMA)
    assert query.sobject.name == "Account"
    assert query.is_count is False
    assert (query.limit, query.offset) == (5, 1)
    assert query.columns == ["Id", "Name", "Owner.Name"]

    count = parse("SELECT COUNT() FROM Contact", SCHEMA)
    assert count.is_count is True
    assert count.columns == []
    assert (count.limit, count.offset) == (None, None)


# ------------------------------------------------------------------------------------------------ rows


def test_rows_carry_attributes_and_canonical_field_names():
    total, rows = run("select id, NAME from account where name = 'acme'")
    assert total == 1
    assert rows == [{"attributes": {"type": "Account", "url": url("Account", ACME)}, "Id": ACME, "Name": "Acme"}]
    assert list(rows[0]) == ["attributes", "Id", "Name"]


def test_missing_field_reads_as_null():
    _, rows = run("SELECT Industry, NumberOfEmployees FROM Account WHERE Name = 'Initech 100%_off'")
    assert [(r["Industry"], r["NumberOfEmployees"]) for r in rows] == [(None, None)]


def test_parent_fields_nest_and_null_parents_are_none():
    _, rows = run("SELECT LastName, Account.Name, Account.Owner.Name FROM Contact ORDER BY LastName")
    by_name = {r["LastName"]: r["Account"] for r in rows}
    assert by_name["Smith"] == {
        "attributes": {"type": "Account", "url": url("Account", ACME)},
        "Name": "Acme",
        "Owner": {"attributes": {"type": "User", "url": url("User", ADA)}, "Name": "Ada Admin"},
    }
    assert by_name["O'Brien"] == {
        "attributes": {"type": "Account", "url": url("Account", GLOBEX)}, "Name": "Globex", "Owner": None,
    }
    assert by_name["Jones"] is None


def test_custom_relationship_two_levels_and_row_values():
    query = parse("SELECT Name, Order__r.OrderNumber, order__R.account.name FROM Shipment__c ORDER BY Name", SCHEMA)
    assert query.columns == ["Name", "Order__r.OrderNumber", "Order__r.Account.Name"]
    total, rows = execute(query, FakeSource(RECORDS), include_deleted=False, api_version="59.0", now=NOW)
    assert total == 2
    assert rows[0]["Order__r"]["Account"]["Name"] == "Acme"
    assert rows[0]["Order__r"]["attributes"] == {"type": "Order", "url": url("Order", O1)}
    assert rows[1]["Order__r"] is None
    assert [row_values(query, r) for r in rows] == [["S-1", "00000001", "Acme"], ["S-2", None, None]]


def test_relationship_groups_at_first_appearance_while_columns_keep_select_order():
    query = parse("SELECT Account.Name, Id, Account.Industry FROM Contact WHERE LastName = 'Smith'", SCHEMA)
    _, rows = execute(query, FakeSource(RECORDS), include_deleted=False, api_version="59.0", now=NOW)
    assert list(rows[0]) == ["attributes", "Account", "Id"]
    assert list(rows[0]["Account"]) == ["attributes", "Name", "Industry"]
    assert query.columns == ["Account.Name", "Id", "Account.Industry"]
    assert row_values(query, rows[0]) == ["Acme", rid("003", 1), "Technology"]


# ----------------------------------------------------------------------------------------------- WHERE


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Account.ERP_Customer_Id__c = 'erp-1'", ["Smith"]),
        ("Account.Owner.Name = 'Ada Admin'", ["Smith"]),
        ("Account.Name = null", ["back\\slash", "Jones"]),
        ("Account.Name != 'Acme'", ["back\\slash", "Jones", "O'Brien"]),
        ("AccountId = '" + ACME + "'", ["Smith"]),
        ("AccountId = '" + ACME[:15] + "'", ["Smith"]),
    ],
)
def test_where_on_parent_paths_and_references(where: str, expected: list[str]):
    assert names(where, "Contact", "LastName") == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Name = 'ACME'", ["Acme"]),
        ("Industry != 'technology'", ["Globex", "Initech 100%_off"]),  # != matches nulls in SOQL
        ("Industry = 'Retail' OR NumberOfEmployees > 75", ["Acme", "Globex", "Hooli"]),
        ("Industry = 'Technology' AND NumberOfEmployees > 75 AND Name != 'Hooli'", ["Acme"]),
        ("NOT Industry = 'Retail'", ["Acme", "Hooli", "Initech 100%_off"]),
        ("(Industry = 'Retail' OR Industry = 'Technology') AND NOT (NumberOfEmployees < 60)", ["Acme", "Hooli"]),
        ("Name = 'Acme' OR (Industry = 'Retail' AND NumberOfEmployees = 50)", ["Acme", "Globex"]),
        ("NOT (Name = 'Acme' OR Name = 'Hooli')", ["Globex", "Initech 100%_off"]),
        ("Industry = null", ["Initech 100%_off"]),
        ("Industry != null", ["Acme", "Globex", "Hooli"]),
        ("Name > 'g' AND Name < 'HOOLI'", ["Globex"]),
    ],
)
def test_string_equality_logic_and_nulls(where: str, expected: list[str]):
    assert names(where) == expected


def test_mixing_and_with_or_needs_parentheses():
    err = error("SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'")
    assert err.error_code == "MALFORMED_QUERY"
    assert "'OR'" in err.message


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("NumberOfEmployees > 50", ["Acme", "Hooli"]),
        ("NumberOfEmployees >= 50", ["Acme", "Globex", "Hooli"]),
        ("NumberOfEmployees < 100", ["Globex"]),
        ("NumberOfEmployees <= 100", ["Acme", "Globex", "Hooli"]),
        ("NumberOfEmployees = 100", ["Acme", "Hooli"]),
        ("NumberOfEmployees != 100", ["Globex", "Initech 100%_off"]),
        ("NumberOfEmployees <> 100", ["Globex", "Initech 100%_off"]),
        ("NumberOfEmployees > -1", ["Acme", "Globex", "Hooli"]),
        ("AnnualRevenue > 250000.4", ["Acme", "Globex"]),
        ("AnnualRevenue < 250000.6", ["Globex"]),
        ("NumberOfEmployees = null", ["Initech 100%_off"]),
    ],
)
def test_number_comparisons(where: str, expected: list[str]):
    assert names(where) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("'ac%'", ["Acme"]),
        ("'%BEX'", ["Globex"]),
        ("'_lobex'", ["Globex"]),
        ("'Glob'", []),
        ("'a.*'", []),  # regex syntax is literal text
        (r"'%100\%\_off'", ["Initech 100%_off"]),
        (r"'Initech 100\_%'", []),  # the character after 100 is %, not an underscore
        (r"'Initech 100_\_off'", ["Initech 100%_off"]),  # unescaped _ matches the %
        (r"'%\%'", []),
    ],
)
def test_like_wildcards_and_escapes(pattern: str, expected: list[str]):
    assert names(f"Name LIKE {pattern}") == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Industry IN ('retail', 'Technology')", ["Acme", "Globex", "Hooli"]),
        ("NumberOfEmployees IN (50, 100.0)", ["Acme", "Globex", "Hooli"]),
        ("Industry NOT IN ('Technology')", ["Globex", "Initech 100%_off"]),
        ("Industry IN ('Retail', null)", ["Globex", "Initech 100%_off"]),
        (f"Id IN ('{ACME}', '{GLOBEX[:15]}')", ["Acme", "Globex"]),
        (f"Id > '{GLOBEX}'", ["Hooli", "Initech 100%_off"]),  # the chunking-by-Id pattern
    ],
)
def test_in_lists_and_ids(where: str, expected: list[str]):
    assert names(where) == expected


def test_string_literal_escapes():
    assert names(r"LastName = 'O\'Brien'", "Contact", "LastName") == ["O'Brien"]
    assert names(r"LastName = 'BACK\\SLASH'", "Contact", "LastName") == ["back\\slash"]
    assert names(r"Title = 'line1\nLINE2\t\"q\"'", "Contact", "LastName") == ["Smith"]
    assert names(r"Title = 'line1\u000aLINE2\t\"q\"'", "Contact", "LastName") == ["Smith"]


def test_booleans_and_deleted_records():
    assert names("IsDeleted = true", include_deleted=True) == ["Umbrella"]
    assert names("IsDeleted = false", include_deleted=True) == ["Acme", "Globex", "Hooli", "Initech 100%_off"]
    assert names("IsDeleted = true") == []
    assert names("Industry = 'Technology'", include_deleted=True) == ["Acme", "Hooli", "Umbrella"]


def test_include_deleted_is_passed_to_the_source():
    source = FakeSource(RECORDS)
    query = parse("SELECT Id FROM Account", SCHEMA)
    execute(query, source, include_deleted=True, api_version="59.0")
    execute(query, source, include_deleted=False, api_version="59.0")
    assert source.scans == [("Account", True), ("Account", False)]


# ------------------------------------------------------------------------------------------ dates


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("CreatedDate = TODAY", ["Acme"]),
        ("CreatedDate = YESTERDAY", ["Globex"]),
        ("CreatedDate = TOMORROW", ["Hooli"]),
        ("CreatedDate > TODAY", ["Hooli"]),
        ("CreatedDate >= TODAY", ["Acme", "Hooli"]),
        ("CreatedDate < TODAY", ["Globex", "Initech 100%_off"]),
        ("CreatedDate <= TODAY", ["Acme", "Globex", "Initech 100%_off"]),
        ("CreatedDate != TODAY", ["Globex", "Hooli", "Initech 100%_off"]),
        ("CreatedDate = LAST_N_DAYS:7", ["Acme", "Globex", "Initech 100%_off"]),
        ("CreatedDate = last_n_days:6", ["Acme", "Globex"]),
        ("CreatedDate = NEXT_N_DAYS:1", ["Hooli"]),
        ("CreatedDate = N_DAYS_AGO:7", ["Initech 100%_off"]),
        ("CreatedDate = LAST_90_DAYS", ["Acme", "Globex", "Initech 100%_off"]),
        ("CreatedDate = 2024-05-10T00:00:00Z", ["Acme"]),
        ("CreatedDate = 2024-05-10T02:00:00+02:00", ["Acme"]),
        ("CreatedDate = 2024-05-10T00:00:00.000Z", ["Acme"]),
        ("CreatedDate > 2024-05-09T23:59:59.998Z", ["Acme", "Globex", "Hooli"]),
        ("CreatedDate < 2024-05-09T19:59:59-04:00", ["Initech 100%_off"]),
    ],
)
def test_datetime_field_with_date_and_datetime_literals(where: str, expected: list[str]):
    assert names(where) == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("EffectiveDate = TODAY", ["00000002"]),
        ("EffectiveDate = LAST_N_DAYS:9", ["00000001", "00000002"]),
        ("EffectiveDate = LAST_N_DAYS:8", ["00000002"]),
        ("EffectiveDate = NEXT_N_DAYS:2", ["00000003"]),
        ("EffectiveDate > TODAY", ["00000003"]),
        ("EffectiveDate = 2024-05-01", ["00000001"]),
        ("EffectiveDate >= 2024-05-10", ["00000002", "00000003"]),
        ("EffectiveDate IN (2024-05-01, 2024-05-12)", ["00000001", "00000003"]),
    ],
)
def test_date_field_with_date_literals(where: str, expected: list[str]):
    assert names(where, "Order", "OrderNumber") == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Status_Updated_At__c <= TODAY", ["S-1", "S-2"]),  # 08:00 today is inside TODAY's range
        ("Status_Updated_At__c < TODAY", ["S-2"]),
        ("Status_Updated_At__c > YESTERDAY", ["S-1"]),
        ("Status_Updated_At__c >= YESTERDAY", ["S-1", "S-2"]),
    ],
)
def test_range_edges_inside_the_day(where: str, expected: list[str]):
    assert names(where, "Shipment__c") == expected


def test_today_is_the_utc_day_of_now():
    late_evening_utc = datetime(2024, 5, 11, 1, 0, tzinfo=timezone(timedelta(hours=2)))  # 2024-05-10 23:00Z
    assert names("CreatedDate = TODAY", now=late_evening_utc) == ["Acme"]


# ---------------------------------------------------------------------------------- ORDER / LIMIT / COUNT


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("NumberOfEmployees, Name", ["Initech 100%_off", "Globex", "Acme", "Hooli"]),
        ("NumberOfEmployees DESC, Name DESC", ["Hooli", "Acme", "Globex", "Initech 100%_off"]),
        ("NumberOfEmployees ASC NULLS LAST, Name", ["Globex", "Acme", "Hooli", "Initech 100%_off"]),
        ("NumberOfEmployees DESC NULLS FIRST, Name", ["Initech 100%_off", "Acme", "Hooli", "Globex"]),
        ("Industry, Name", ["Initech 100%_off", "Globex", "Acme", "Hooli"]),
        ("CreatedDate DESC", ["Hooli", "Acme", "Globex", "Initech 100%_off"]),
    ],
)
def test_order_by(order: str, expected: list[str]):
    _, rows = run(f"SELECT Name FROM Account ORDER BY {order}")  # noqa: S608 - SOQL under test, not SQL
    assert [r["Name"] for r in rows] == expected


def test_order_by_is_case_insensitive_and_follows_parent_paths():
    _, rows = run("SELECT LastName FROM Contact ORDER BY LastName")
    assert [r["LastName"] for r in rows] == ["back\\slash", "Jones", "O'Brien", "Smith"]
    _, rows = run("SELECT LastName FROM Contact ORDER BY Account.Name DESC NULLS LAST, LastName")
    assert [r["LastName"] for r in rows] == ["O'Brien", "Smith", "back\\slash", "Jones"]


def test_limit_and_offset():
    total, rows = run("SELECT Name FROM Account ORDER BY Name LIMIT 2 OFFSET 1")
    assert total == 2
    assert [r["Name"] for r in rows] == ["Globex", "Hooli"]
    assert run("SELECT Name FROM Account LIMIT 0") == (0, [])
    assert run("SELECT Name FROM Account ORDER BY Name OFFSET 10") == (0, [])
    assert run("SELECT Name FROM Account LIMIT 1")[0] == 1


def test_offset_above_2000_is_out_of_range():
    assert parse("SELECT Id FROM Account OFFSET 2000", SCHEMA).offset == 2000
    err = error("SELECT Id FROM Account LIMIT 10 OFFSET 2001")
    assert err.error_code == "NUMBER_OUTSIDE_VALID_RANGE"
    assert "2000" in err.message


def test_count():
    assert run("SELECT COUNT() FROM Account") == (4, [])
    assert run("select count() from Account where Industry = 'Technology'") == (2, [])
    assert run("SELECT COUNT() FROM Account", include_deleted=True) == (5, [])
    assert run("SELECT COUNT() FROM Contact WHERE Account.Name = null") == (2, [])
    assert run("SELECT COUNT() FROM Account LIMIT 3") == (3, [])


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("soql", "code", "needle"),
    [
        ("SELECT Nmae FROM Account", "INVALID_FIELD", "No such column 'Nmae' on entity 'Account'"),
        ("SELECT Account.Nmae FROM Contact", "INVALID_FIELD", "No such column 'Nmae' on entity 'Account'"),
        ("SELECT Acount.Name FROM Contact", "INVALID_FIELD", "Didn't understand relationship 'Acount'"),
        ("SELECT Name.First FROM Contact", "INVALID_FIELD", "Didn't understand relationship 'Name'"),
        ("SELECT Id FROM Contact WHERE Foo__c = 'x'", "INVALID_FIELD", "'Foo__c'"),
        ("SELECT Id FROM Contact ORDER BY Bar", "INVALID_FIELD", "'Bar'"),
        ("SELECT Id FROM Acount", "INVALID_TYPE", "sObject type 'Acount' is not supported"),
        ("SELECT Id FRM Account", "MALFORMED_QUERY", "unexpected token: 'FRM'"),
        ("SELECT Id FROM Account WHERE Name = 'x' LIMT 5", "MALFORMED_QUERY", "'LIMT'"),
        ("SELECT Id, Name, id FROM Account", "MALFORMED_QUERY", "duplicate field selected: Id"),
        ("SELECT Id FROM Account WHERE NumberOfEmployees = '100'", "INVALID_FIELD", "'100'"),
        ("SELECT Id FROM Account WHERE Name = 5", "INVALID_FIELD", "'Name' must be of type string"),
        ("SELECT Id FROM Account WHERE IsDeleted = 'true'", "INVALID_FIELD", "'IsDeleted'"),
        ("SELECT Id FROM Account WHERE CreatedDate = 2024-05-10", "INVALID_FIELD", "dateTime"),
        ("SELECT Id FROM Order WHERE EffectiveDate = 2024-05-10T00:00:00Z", "INVALID_FIELD", "type date"),
        ("SELECT Id FROM Account WHERE NumberOfEmployees LIKE '1%'", "MALFORMED_QUERY", "LIKE"),
        ("SELECT Id FROM Account WHERE IsDeleted > false", "MALFORMED_QUERY", ">"),
        ("SELECT Id FROM Account WHERE Name < null", "MALFORMED_QUERY", "null"),
        ("SELECT Id FROM Account WHERE Description = 'x'", "INVALID_FIELD", "'Description'"),
        ("SELECT Id FROM Account ORDER BY Description", "INVALID_FIELD", "'Description'"),
        ("SELECT Id FROM Account WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR", "abc"),
        ("SELECT Id FROM Account WHERE CreatedDate = 2024-05-10T00:00:00", "MALFORMED_QUERY", "2024-05-10T00:00:00"),
        ("SELECT Id FROM Account WHERE CreatedDate = 2024-02-30T00:00:00Z", "MALFORMED_QUERY", "2024-02-30"),
        ("SELECT Id FROM Account WHERE Name = 'a\\q'", "MALFORMED_QUERY", "\\q"),
        ("SELECT Id FROM Account WHERE Name = 'abc", "MALFORMED_QUERY", "'abc"),
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY", "<EOF>"),
    ],
)
def test_errors_name_the_offending_token(soql: str, code: str, needle: str):
    err = error(soql)
    assert err.error_code == code
    assert needle in err.message


@pytest.mark.parametrize(
    ("soql", "token"),
    [
        ("SELECT Id FROM Account a", "'a'"),
        ("SELECT Id FROM Account, Contact", "','"),
        ("SELECT COUNT(Id) FROM Account", "COUNT(Id"),
        ("SELECT Industry, MAX(NumberOfEmployees) FROM Account", "MAX"),
        ("SELECT Id, (SELECT Id FROM Contacts) FROM Account", "SELECT"),
        ("SELECT Name FROM Account GROUP BY Name", "GROUP"),
        ("SELECT Id FROM Account WHERE Name = 'x' HAVING Name = 'y'", "HAVING"),
        ("SELECT Id FROM Account WITH SECURITY_ENFORCED", "WITH"),
        ("SELECT Id FROM Account ORDER BY Name FOR UPDATE", "FOR"),
        ("SELECT Id FROM Account WHERE Name = :name", ":name"),
        ("SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact)", "IN (SELECT"),
        ("SELECT Id FROM Account WHERE CreatedDate = THIS_WEEK", "THIS_WEEK"),
        ("SELECT Id FROM Account WHERE CALENDAR_YEAR(CreatedDate) = 2024", "CALENDAR_YEAR"),
        ("SELECT TYPEOF Owner WHEN User THEN Name END FROM Account", "TYPEOF"),
        ("SELECT FIELDS(ALL) FROM Account", "FIELDS"),
        ("SELECT toLabel(Industry) FROM Account", "toLabel"),
        ("SELECT Id FROM Account WHERE Industry INCLUDES ('a')", "INCLUDES"),
        ("SELECT Id FROM Account WHERE CreatedDate IN (TODAY)", "TODAY"),
    ],
)
def test_constructs_outside_the_subset_are_refused(soql: str, token: str):
    err = error(soql)
    assert err.error_code == "MALFORMED_QUERY"
    assert token in err.message


MALFORMED = [
    "",
    "   ",
    "SELECT",
    "SELECT Id",
    "SELECT Id FROM",
    "SELECT FROM Account",
    "SELECT Id, FROM Account",
    "SELECT Id,, Name FROM Account",
    "SELECT Id Name FROM Account",
    "SELECT * FROM Account",
    "SELECT Id FROM Account;",
    "SELECT Id FROM Account WHERE Name",
    "SELECT Id FROM Account WHERE Name =",
    "SELECT Id FROM Account WHERE Name = 'x\\'",
    "SELECT Id FROM Account WHERE Name = 'x' AND",
    "SELECT Id FROM Account WHERE (Name = 'x'",
    "SELECT Id FROM Account WHERE Name = 'x')",
    "SELECT Id FROM Account WHERE Name IN ()",
    "SELECT Id FROM Account WHERE Name IN ('a',)",
    "SELECT Id FROM Account WHERE Name IN 'a'",
    "SELECT Id FROM Account WHERE Name NOT LIKE 'a'",
    "SELECT Id FROM Account WHERE NOT",
    "SELECT Id FROM Account WHERE Name LIKE null",
    "SELECT Id FROM Account WHERE Name == 'a'",
    "SELECT Id FROM Account WHERE Name = \"a\"",
    "SELECT Id FROM Account WHERE Name = 'a' 'b'",
    "SELECT Id FROM Account WHERE Name = 'a\\u12'",
    "SELECT Id FROM Account WHERE Naïve = 1",
    "SELECT Id FROM Account\x00",
    "SELECT Id FROM Account ORDER Name",
    "SELECT Id FROM Account ORDER BY",
    "SELECT Id FROM Account ORDER BY Name NULLS",
    "SELECT Id FROM Account ORDER BY Name ASC DESC",
    "SELECT Id FROM Account LIMIT",
    "SELECT Id FROM Account LIMIT -1",
    "SELECT Id FROM Account LIMIT 1.5",
    "SELECT Id FROM Account LIMIT 'a'",
    "SELECT Id FROM Account OFFSET 1 LIMIT 1",
    "SELECT Id FROM Account LIMIT 1 LIMIT 2",
    "SELECT Id FROM Account LIMIT " + "9" * 5000,
    "SELECT Id FROM Account WHERE NumberOfEmployees = " + "9" * 5000,
    "SELECT Id FROM Account WHERE " + "(" * 500 + "Name = 'x'" + ")" * 500,
    "SELECT Id FROM Account WHERE " + "NOT " * 500 + "Name = 'x'",
    "SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS",
    "SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS:",
    "SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS:-1",
    "SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS:x",
    "SELECT Id FROM Account WHERE CreatedDate = TODAY:5",
    "SELECT Id FROM Account WHERE CreatedDate > 2024-13-01T00:00:00Z",
    "SELECT Id FROM Account WHERE CreatedDate > 2024-01-01T00:00:00+25:00",
    "SELECT Id FROM Account WHERE CreatedDate > 2024-01-01T",
    "SELECT Account..Name FROM Contact",
    "SELECT .Name FROM Contact",
    "SELECT Account. FROM Contact",
    "SELECT Account.Parent.Parent.Parent.Parent.Parent.Name FROM Contact",
    "SELECT COUNT(), Id FROM Account",
    "SELECT COUNT( FROM Account",
    "'",
    "\\",
    "FROM Account SELECT Id",
]


@pytest.mark.parametrize("soql", MALFORMED, ids=[repr(s)[:60] for s in MALFORMED])
def test_malformed_queries_raise_api_errors_only(soql: str):
    assert error(soql).error_code in {"MALFORMED_QUERY", "INVALID_FIELD", "NUMBER_OUTSIDE_VALID_RANGE"}


def test_mutated_queries_never_raise_anything_but_api_error():
    valid = [
        "SELECT Id, Name, Owner.Name FROM Account WHERE (Name LIKE 'a\\%%' OR NumberOfEmployees IN (1, 2.5)) "
        "AND CreatedDate > LAST_N_DAYS:30 ORDER BY Name DESC NULLS LAST LIMIT 10 OFFSET 5",
        "SELECT COUNT() FROM Contact WHERE Account.CreatedDate < 2024-01-31T10:00:00.000+01:00",
        "SELECT Name FROM Order WHERE EffectiveDate != 2024-01-31 AND NOT Status = null",
    ]
    alphabet = [*"()',.:=<>!%_\\\"-+ 0129TZaz\n\x00é", "AND", "OR", "NOT", "IN", "NULL", "TODAY", "''"]
    rng = random.Random(20240510)
    for _ in range(3000):
        text = list(rng.choice(valid))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(text) + 1)
            action = rng.random()
            if action < 0.4 and text:
                del text[min(at, len(text) - 1)]
            elif action < 0.8:
                text.insert(at, rng.choice(alphabet))
            elif text:
                text[min(at, len(text) - 1)] = rng.choice(alphabet)
        soql = "".join(text)
        try:
            query = parse(soql, SCHEMA)
        except ApiError:
            continue
        execute(query, FakeSource(RECORDS), include_deleted=False, api_version="59.0", now=NOW)


# ----------------------------------------------------------------------------------------- performance


@pytest.mark.slow
def test_fifty_thousand_records_filter_correctly():
    """Volume correctness; the speed of the same query is a benchmark figure, not an assertion."""
    industries = ["Retail", "Technology", "Banking", None]
    bulk = [RECORDS[0]] + [
        record("001", n, Name=f"Account {n}", Industry=industries[n % 4], NumberOfEmployees=n % 500, OwnerId=ADA,
               CreatedDate=f"2024-05-{1 + n % 28:02d}T10:00:00.000+0000")
        for n in range(1, 50_001)
    ]
    query = parse(
        "SELECT Id, Name, Owner.Name FROM Account WHERE (Industry = 'Retail' OR NumberOfEmployees < 100) "
        "AND Name LIKE 'account%' AND CreatedDate = LAST_N_DAYS:5 AND Owner.IsActive = true",
        SCHEMA,
    )
    total, rows = execute(query, FakeSource(bulk), include_deleted=False, api_version="59.0", now=NOW)
    expected = sum(
        1 for n in range(1, 50_001)
        if (n % 4 == 0 or n % 500 < 100) and 5 <= 1 + n % 28 <= 10
    )
    assert total == len(rows) == expected
