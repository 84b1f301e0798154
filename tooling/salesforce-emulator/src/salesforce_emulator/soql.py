"""SOQL for the emulator: the subset the project's clients send, parsed once, evaluated over stored records.

Every name is resolved against the schema while parsing, so a query that parses can only fail on data,
never on an unknown field; the WHERE clause becomes one Python closure per execution, not per row.
Anything outside the subset is refused with MALFORMED_QUERY rather than answered approximately.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import islice
from typing import Protocol

from .errors import ApiError
from .ids import is_well_formed, to18
from .schema import NUMBER_TYPES, TEXT_TYPES, Field, Schema, SObjectType

MAX_OFFSET = 2000
MAX_RELATIONSHIP_DEPTH = 5
_MAX_NESTING = 50  # parentheses / NOT depth: keeps hostile input far from Python's recursion limit

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    |(?P<datetime>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})?)
    |(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})
    |(?P<number>[+-]?[0-9]+(?:\.[0-9]+)?)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op><=|>=|!=|<>|=|<|>)
    |(?P<punct>[(),.:])
    """,
    re.VERBOSE,
)
_DATETIME_PARTS = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_ESCAPES = {
    "n": "\n", "N": "\n", "t": "\t", "T": "\t", "r": "\r", "R": "\r", "b": "\b", "B": "\b",
    "f": "\f", "F": "\f", '"': '"', "'": "'", "\\": "\\",
}
_CLAUSES = {"WHERE", "ORDER", "LIMIT", "OFFSET"}
_UNSUPPORTED_CLAUSES = {
    "WITH": "WITH", "USING": "USING SCOPE", "GROUP": "GROUP BY", "HAVING": "HAVING", "FOR": "FOR VIEW/UPDATE",
    "UPDATE": "UPDATE TRACKING/VIEWSTAT", "ALL": "ALL ROWS",
}
# Relative day ranges the emulator knows; other SOQL date literals (weeks, quarters, fiscal periods) depend on
# locale or org settings and are refused.
_DAY_LITERALS = {"TODAY", "YESTERDAY", "TOMORROW", "LAST_90_DAYS", "NEXT_90_DAYS"}
_N_DAY_LITERALS = {"LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO"}
_OTHER_DATE_LITERAL = re.compile(
    r"^(?:(?:LAST|THIS|NEXT)_(?:WEEK|MONTH|QUARTER|YEAR|FISCAL_QUARTER|FISCAL_YEAR)"
    r"|(?:LAST|NEXT)_N_(?:WEEKS|MONTHS|QUARTERS|YEARS|FISCAL_QUARTERS|FISCAL_YEARS)"
    r"|N_(?:WEEKS|MONTHS|QUARTERS|YEARS|FISCAL_QUARTERS|FISCAL_YEARS)_AGO)$"
)
_HINT_OBJECT = (
    "If you are attempting to use a custom object, be sure to append the '__c' after the entity name. "
    "Please reference your WSDL or the describe call for the appropriate names."
)
_HINT_FIELD = (
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. "
    "Please reference your WSDL or the describe call for the appropriate names."
)
_HINT_RELATIONSHIP = (
    "If you are attempting to use a custom relationship, be sure to append the '__r' after the custom "
    "relationship name. Please reference your WSDL or the describe call for the appropriate names."
)
_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_OPERATORS_BY_KIND = {
    "text": {"=", "!=", "<", "<=", ">", ">=", "LIKE", "IN", "NOT IN"},
    "id": {"=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN"},
    "number": {"=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN"},
    "date": {"=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN"},
    "datetime": {"=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN"},
    "boolean": {"=", "!="},
}


def _malformed(message: str) -> ApiError:
    return ApiError(400, "MALFORMED_QUERY", message)


def _unsupported(what: str) -> ApiError:
    return _malformed(f"{what} is not supported by the emulator's SOQL subset")


@dataclass(frozen=True)
class _Token:
    kind: str  # ident, string, number, date, datetime, op, punct, eof
    text: str
    value: object = None
    pos: int = 0

    @property
    def shown(self) -> str:
        return "<EOF>" if self.kind == "eof" else self.text


@dataclass(frozen=True)
class FieldPath:
    """A field reached from the queried object through zero or more parent relationships."""

    hops: tuple[Field, ...]  # reference fields followed from the root object, in order
    targets: tuple[SObjectType, ...]  # the object each hop lands on
    field: Field
    path: str  # canonical dotted name, e.g. "Account.Owner.Name"

    def __repr__(self) -> str:  # the default would print whole object descriptions
        return f"FieldPath({self.path!r})"


@dataclass(frozen=True)
class DateLiteral:
    """A relative day range such as TODAY or LAST_N_DAYS:7, fixed only when the query runs."""

    name: str
    n: int = 0

    def bounds(self, today: date) -> tuple[date, date]:
        """The half-open day range [start, end) for the given current UTC day."""
        offsets = {
            "TODAY": (0, 1), "YESTERDAY": (-1, 0), "TOMORROW": (1, 2),
            "LAST_90_DAYS": (-90, 1), "NEXT_90_DAYS": (1, 91),
            "LAST_N_DAYS": (-self.n, 1), "NEXT_N_DAYS": (1, 1 + self.n), "N_DAYS_AGO": (-self.n, 1 - self.n),
        }
        start, end = offsets[self.name]
        return _shift(today, start), _shift(today, end)


def _shift(day: date, days: int) -> date:
    """Day arithmetic that saturates at the calendar's ends instead of overflowing on huge N."""
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.min if days < 0 else date.max


@dataclass(frozen=True)
class Comparison:
    path: FieldPath
    op: str  # = != < <= > >= LIKE IN "NOT IN"
    value: object  # literal in the field's comparison domain, None, DateLiteral, compiled LIKE or frozenset


@dataclass(frozen=True)
class Logical:
    op: str  # AND / OR
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Negation:
    item: Condition


Condition = Comparison | Logical | Negation


@dataclass(frozen=True)
class OrderKey:
    path: FieldPath
    descending: bool
    nulls_first: bool


@dataclass
class Query:
    sobject: SObjectType
    is_count: bool
    limit: int | None
    offset: int | None
    columns: list[str]  # canonical output paths in SELECT order, e.g. ["Id", "Account.Name"]
    fields: list[FieldPath] = field(default_factory=list)
    where: Condition | None = None
    order_by: list[OrderKey] = field(default_factory=list)

    def __repr__(self) -> str:
        return (
            f"Query({self.sobject.name}, count={self.is_count}, columns={self.columns}, where={self.where}, "
            f"order_by={self.order_by}, limit={self.limit}, offset={self.offset})"
        )


class RecordSource(Protocol):
    def scan(self, sobject: str, include_deleted: bool) -> Iterable[dict]: ...

    def get(self, record_id: str) -> dict | None: ...


# ----------------------------------------------------------------------------------------------- lexing


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos] == "'":
            token, pos = _lex_string(text, pos)
            tokens.append(token)
            continue
        m = _TOKEN.match(text, pos)
        if m is None:
            shown = text[pos] if text[pos].isprintable() else repr(text[pos])[1:-1]
            raise _malformed(f"unexpected token: '{shown}'")
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, m.group(), _literal_value(kind, m.group()), pos))
        pos = m.end()
    tokens.append(_Token("eof", "", None, len(text)))
    return tokens


def _literal_value(kind: str, text: str) -> object:
    if kind == "number":
        if len(text) > 40:
            raise _malformed(f"number too long: '{text[:20]}...'")
        return float(text) if "." in text else int(text)
    if kind == "date":
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise _malformed(f"invalid date literal: '{text}'") from None
    if kind == "datetime":
        return _parse_datetime_literal(text)
    return None


def _parse_datetime_literal(text: str) -> datetime:
    m = _DATETIME_PARTS.fullmatch(text)
    if m is None:  # the lexer's pattern and this one match the same strings
        raise _malformed(f"invalid datetime literal: '{text}'")
    day, hh, mm, ss, frac, zone = m.groups()
    if zone is None:
        raise _malformed(f"datetime literal '{text}' needs a time zone: Z, +hh:mm or -hh:mm")
    try:
        moment = datetime.fromisoformat(f"{day}T{hh}:{mm}:{ss}")
        moment = moment.replace(microsecond=int((frac or "0")[:6].ljust(6, "0")))
        if zone == "Z":
            return moment.replace(tzinfo=UTC)
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        return moment.replace(tzinfo=timezone(offset if zone[0] == "+" else -offset))
    except ValueError:
        raise _malformed(f"invalid datetime literal: '{text}'") from None


def _lex_string(text: str, start: int) -> tuple[_Token, int]:
    """A quoted literal, kept both decoded and as a LIKE regex, where only unescaped % and _ are wildcards."""
    plain: list[str] = []
    like: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "'":
            value = ("".join(plain), "".join(like))
            return _Token("string", text[start : i + 1], value, start), i + 1
        if ch == "\\":
            esc = text[i + 1 : i + 2]
            if esc in ("%", "_"):
                plain.append(esc)
                like.append(re.escape(esc))
                i += 2
                continue
            if esc in _ESCAPES:
                decoded, i = _ESCAPES[esc], i + 2
            elif esc in ("u", "U") and re.fullmatch(r"[0-9A-Fa-f]{4}", text[i + 2 : i + 6]):
                decoded, i = chr(int(text[i + 2 : i + 6], 16)), i + 6
            elif esc == "":
                break
            else:
                snippet = text[start : i + 2]
                raise _malformed(
                    f"Invalid string literal '{snippet}'. "
                    f"Illegal character sequence '\\{esc}' in string literal."
                )
            plain.append(decoded)
            like.append(re.escape(decoded))
            continue
        plain.append(ch)
        like.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    raise _malformed(f"unterminated string literal: '{text[start : start + 40]}'")


# ---------------------------------------------------------------------------------------------- parsing


def _kind(f: Field) -> str:
    """The comparison domain of a field type: how literals convert and stored values compare."""
    if f.type in TEXT_TYPES:
        return "text"
    if f.type in NUMBER_TYPES:
        return "number"
    if f.type in ("id", "reference"):
        return "id"
    return f.type  # boolean, date, datetime


class _Parser:
    def __init__(self, text: str, schema: Schema):
        self.tokens = _lex(text)
        self.i = 0
        self.schema = schema

    # -- token plumbing

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        tok = self.peek()
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def at_word(self, *words: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "ident" and tok.text.upper() in words

    def at_punct(self, text: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "punct" and tok.text == text

    def unexpected(self, tok: _Token | None = None, hint: str = "") -> ApiError:
        tok = tok or self.peek()
        return _malformed(f"unexpected token: '{tok.shown}'" + (f" ({hint})" if hint else ""))

    def expect_word(self, word: str) -> None:
        if not self.at_word(word):
            raise self.unexpected(hint=f"expected {word}")
        self.take()

    def expect_punct(self, text: str) -> None:
        if not self.at_punct(text):
            raise self.unexpected(hint=f"expected '{text}'")
        self.take()

    # -- grammar

    def query(self) -> Query:
        self.expect_word("SELECT")
        is_count, raw_fields = self.select_list()
        self.expect_word("FROM")
        name = self.take()
        if name.kind != "ident":
            raise self.unexpected(name, "expected an object name")
        sobject = self.schema.get(name.text)
        if sobject is None:
            message = f"sObject type '{name.text}' is not supported. {_HINT_OBJECT}"
            raise ApiError(400, "INVALID_TYPE", message)
        if sobject.is_event:  # platform events are published and subscribed to, never queried
            raise ApiError(400, "INVALID_TYPE", f"sObject type '{sobject.name}' is not supported.")
        if self.at_punct(","):
            raise _unsupported("querying more than one object (',' after FROM)")
        tok = self.peek()
        if tok.kind == "ident" and tok.text.upper() not in _CLAUSES | _UNSUPPORTED_CLAUSES.keys():
            raise _unsupported(f"an object alias ('{tok.text}')")

        fields: list[FieldPath] = []
        for parts in raw_fields:
            path = self.resolve(sobject, parts)
            if any(p.path.lower() == path.path.lower() for p in fields):
                raise _malformed(f"duplicate field selected: {path.path}")
            fields.append(path)

        where = None
        if self.at_word("WHERE"):
            self.take()
            where = self.condition(sobject, 0)
        self.reject_unsupported_clause()
        order_by = self.order_by(sobject) if self.at_word("ORDER") else []
        self.reject_unsupported_clause()
        limit = self.count_clause("LIMIT") if self.at_word("LIMIT") else None
        offset = self.count_clause("OFFSET") if self.at_word("OFFSET") else None
        if offset is not None and offset > MAX_OFFSET:
            raise ApiError(400, "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}")
        self.reject_unsupported_clause()
        if self.peek().kind != "eof":
            raise self.unexpected()
        return Query(
            sobject=sobject, is_count=is_count, limit=limit, offset=offset,
            columns=[p.path for p in fields], fields=fields, where=where, order_by=order_by,
        )

    def reject_unsupported_clause(self) -> None:
        tok = self.peek()
        if tok.kind == "ident" and tok.text.upper() in _UNSUPPORTED_CLAUSES:
            raise _unsupported(f"{_UNSUPPORTED_CLAUSES[tok.text.upper()]} ('{tok.text}')")

    def select_list(self) -> tuple[bool, list[list[_Token]]]:
        if self.at_word("COUNT") and self.at_punct("(", 1):
            self.take()
            self.take()
            if not self.at_punct(")"):
                raise _malformed(
                    f"COUNT({self.peek().shown}...): aggregate queries are not supported by the emulator's SOQL "
                    "subset; use COUNT()"
                )
            self.take()
            if self.at_punct(","):
                raise _malformed("COUNT() must be the only item in the SELECT list")
            return True, []
        items: list[list[_Token]] = []
        while True:
            if self.at_punct("("):
                raise _unsupported("a child relationship subquery ('(SELECT ...)')")
            if self.at_word("TYPEOF"):
                raise _unsupported("TYPEOF")
            if self.at_word("FROM") and not self.at_punct(".", 1):
                raise self.unexpected(hint="expected a field name")
            items.append(self.path_tokens())
            if not self.at_punct(","):
                return False, items
            self.take()

    def path_tokens(self) -> list[_Token]:
        tok = self.take()
        if tok.kind != "ident":
            raise self.unexpected(tok, "expected a field name")
        if self.at_punct("("):
            raise _unsupported(f"the function {tok.text}()")
        parts = [tok]
        while self.at_punct("."):
            self.take()
            tok = self.take()
            if tok.kind != "ident":
                raise self.unexpected(tok, "expected a field or relationship name after '.'")
            parts.append(tok)
        return parts

    def resolve(self, root: SObjectType, parts: list[_Token]) -> FieldPath:
        if len(parts) - 1 > MAX_RELATIONSHIP_DEPTH:
            dotted = ".".join(t.text for t in parts)
            raise _malformed(
                f"'{dotted}': SOQL statements cannot query relationships that are more than "
                f"{MAX_RELATIONSHIP_DEPTH} levels away from the root entity object."
            )
        current = root
        hops: list[Field] = []
        targets: list[SObjectType] = []
        names: list[str] = []
        for tok in parts[:-1]:
            ref = current.relationship(tok.text)
            if ref is None:
                raise ApiError(
                    400, "INVALID_FIELD",
                    f"Didn't understand relationship '{tok.text}' in field path. {_HINT_RELATIONSHIP}",
                )
            if len(ref.reference_to) != 1:
                raise _unsupported(f"the polymorphic relationship '{tok.text}'")
            target = self.schema.get(ref.reference_to[0])
            if target is None:  # load_schema guarantees targets exist; a hand-built Schema might not
                raise ApiError(400, "INVALID_TYPE", f"sObject type '{ref.reference_to[0]}' is not supported.")
            hops.append(ref)
            targets.append(target)
            names.append(ref.relationship_name or tok.text)
            current = target
        leaf = current.field(parts[-1].text)
        if leaf is None:
            raise ApiError(
                400, "INVALID_FIELD",
                f"No such column '{parts[-1].text}' on entity '{current.name}'. {_HINT_FIELD}",
            )
        return FieldPath(tuple(hops), tuple(targets), leaf, ".".join([*names, leaf.name]))

    # -- WHERE

    def condition(self, sobject: SObjectType, depth: int) -> Condition:
        """AND/OR chains; SOQL has no precedence between them, so mixing needs parentheses."""
        items = [self.unary(sobject, depth)]
        joiner: str | None = None
        while self.at_word("AND", "OR"):
            tok = self.take()
            word = tok.text.upper()
            if joiner is not None and word != joiner:
                raise self.unexpected(tok, "use parentheses when mixing AND and OR")
            joiner = word
            items.append(self.unary(sobject, depth))
        return items[0] if joiner is None else Logical(joiner, tuple(items))

    def unary(self, sobject: SObjectType, depth: int) -> Condition:
        if depth > _MAX_NESTING:
            raise _malformed(f"WHERE clause nested deeper than {_MAX_NESTING} levels")
        if self.at_word("NOT"):
            self.take()
            return Negation(self.unary(sobject, depth + 1))
        if self.at_punct("("):
            self.take()
            inner = self.condition(sobject, depth + 1)
            self.expect_punct(")")
            return inner
        return self.comparison(sobject)

    def comparison(self, sobject: SObjectType) -> Comparison:
        path = self.resolve(sobject, self.path_tokens())
        if path.field.type == "textarea":
            raise ApiError(400, "INVALID_FIELD", f"field '{path.path}' can not be filtered in a query call")
        tok = self.take()
        if tok.kind == "op":
            op = "!=" if tok.text == "<>" else tok.text
        elif tok.kind == "ident" and tok.text.upper() in ("LIKE", "IN"):
            op = tok.text.upper()
        elif tok.kind == "ident" and tok.text.upper() == "NOT" and self.at_word("IN"):
            self.take()
            op = "NOT IN"
        elif tok.kind == "ident" and tok.text.upper() in ("INCLUDES", "EXCLUDES"):
            raise _unsupported(f"{tok.text.upper()} (multi-select picklists)")
        else:
            raise self.unexpected(tok, f"expected a comparison operator after {path.path}")
        kind = _kind(path.field)
        if op not in _OPERATORS_BY_KIND[kind]:
            raise _malformed(f"operator {op} cannot be used on field '{path.path}' of type {path.field.type}")

        if op in ("IN", "NOT IN"):
            self.expect_punct("(")
            if self.at_word("SELECT"):
                raise _unsupported("a semi-join subquery ('IN (SELECT ...)')")
            values = [self.convert(path, self.literal())]
            while self.at_punct(","):
                self.take()
                values.append(self.convert(path, self.literal()))
            self.expect_punct(")")
            if any(isinstance(v, DateLiteral) for v in values):
                raise _malformed(f"date literals such as TODAY cannot be used in {op} lists")
            return Comparison(path, op, frozenset(values))

        lit = self.literal()
        if op == "LIKE":
            if lit.kind != "string":
                raise _malformed(f"LIKE needs a quoted string, got '{lit.shown}'")
            _plain, pattern = lit.value
            return Comparison(path, op, re.compile(pattern, re.IGNORECASE | re.DOTALL))
        value = self.convert(path, lit)
        if value is None and op not in ("=", "!="):
            raise _malformed(f"null can only be compared with = or !=, not {op}")
        return Comparison(path, op, value)

    def literal(self) -> _Token:
        tok = self.take()
        if tok.kind in ("string", "number", "date", "datetime"):
            return tok
        if tok.kind == "punct" and tok.text == ":":
            raise _unsupported(f"the bind variable ':{self.peek().shown}'")
        if tok.kind != "ident":
            raise self.unexpected(tok, "expected a value")
        word = tok.text.upper()
        if word in ("NULL", "TRUE", "FALSE"):
            return _Token("keyword", tok.text, {"NULL": None, "TRUE": True, "FALSE": False}[word], tok.pos)
        if word in _DAY_LITERALS:
            return _Token("range", tok.text, DateLiteral(word), tok.pos)
        if word in _N_DAY_LITERALS:
            self.expect_punct(":")
            n = self.take()
            if n.kind != "number" or not isinstance(n.value, int) or n.value < 0 or n.text[0] in "+-":
                raise self.unexpected(n, f"{word}:n needs a non-negative whole number")
            return _Token("range", f"{tok.text}:{n.text}", DateLiteral(word, n.value), tok.pos)
        if _OTHER_DATE_LITERAL.match(word):
            raise _unsupported(f"the date literal {tok.text}")
        if self.at_punct("("):
            raise _unsupported(f"the function {tok.text}()")
        raise self.unexpected(tok, "expected a value")

    def convert(self, path: FieldPath, lit: _Token) -> object:
        """A literal in the field's comparison domain, or a type error naming field and literal."""
        kind = _kind(path.field)
        if lit.kind == "keyword" and lit.value is None:
            return None
        if kind == "text" and lit.kind == "string":
            return lit.value[0].lower()
        if kind == "id" and lit.kind == "string":
            raw = lit.value[0]
            if not is_well_formed(raw):
                raise ApiError(400, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {raw}")
            return to18(raw)
        if (kind, lit.kind) in (("number", "number"), ("datetime", "datetime"), ("date", "range"),
                                ("datetime", "range")):
            return lit.value
        if kind == "boolean" and lit.kind == "keyword":
            return lit.value
        if kind == "date" and lit.kind == "date":
            return lit.value.isoformat()
        expected = {
            "text": "string", "id": "id", "boolean": "boolean", "date": "date", "datetime": "dateTime",
            "number": "integer" if path.field.type == "int" else "double",
        }[kind]
        quoting = "should be" if kind in ("text", "id") else "should not be"
        raise ApiError(
            400, "INVALID_FIELD",
            f"value of filter criterion for field '{path.path}' must be of type {expected} and {quoting} "
            f"enclosed in quotes (got {lit.shown})",
        )

    # -- ORDER BY / LIMIT / OFFSET

    def order_by(self, sobject: SObjectType) -> list[OrderKey]:
        self.take()
        self.expect_word("BY")
        keys: list[OrderKey] = []
        while True:
            path = self.resolve(sobject, self.path_tokens())
            if path.field.type == "textarea":
                raise ApiError(400, "INVALID_FIELD", f"field '{path.path}' can not be sorted in a query call")
            descending = False
            if self.at_word("ASC", "DESC"):
                descending = self.take().text.upper() == "DESC"
            nulls_first = not descending
            if self.at_word("NULLS"):
                self.take()
                if not self.at_word("FIRST", "LAST"):
                    raise self.unexpected(hint="expected FIRST or LAST after NULLS")
                nulls_first = self.take().text.upper() == "FIRST"
            keys.append(OrderKey(path, descending, nulls_first))
            if not self.at_punct(","):
                return keys
            self.take()

    def count_clause(self, word: str) -> int:
        self.take()
        tok = self.take()
        if tok.kind != "number" or not re.fullmatch(r"[0-9]+", tok.text):
            raise self.unexpected(tok, f"{word} needs a non-negative whole number")
        if len(tok.text) > 10:
            raise ApiError(400, "NUMBER_OUTSIDE_VALID_RANGE", f"{word} value out of range: {tok.text}")
        return int(tok.text)


def parse(text: str, schema: Schema) -> Query:
    """Parse and resolve a SOQL query; every failure is an ApiError naming the offending token."""
    if not isinstance(text, str) or not text.strip():
        raise _malformed("empty query")
    return _Parser(text, schema).query()


# -------------------------------------------------------------------------------------------- execution


def _as_text(value: object) -> object:
    return value.lower() if isinstance(value, str) else None


def _as_id(value: object) -> object:
    return value if isinstance(value, str) else None


def _as_number(value: object) -> object:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _as_boolean(value: object) -> object:
    return value if isinstance(value, bool) else None


def _as_date(value: object) -> object:
    return value[:10] if isinstance(value, str) else None


def _as_instant(value: object) -> object:
    """Stored datetimes carry an offset (+0000); instants compare correctly whatever the offset."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# Stored values are mapped into each kind's domain before comparing; a value of the wrong Python type reads
# as null instead of raising mid-scan.
_NORMALIZE: dict[str, Callable[[object], object]] = {
    "text": _as_text, "id": _as_id, "number": _as_number, "boolean": _as_boolean,
    "date": _as_date, "datetime": _as_instant,
}

Reader = Callable[[dict], object]
Lookup = Callable[[object], dict | None]


def _reader(path: FieldPath, lookup: Lookup) -> Reader:
    """The stored value at the end of a path; a missing parent anywhere along it reads as null."""
    name = path.field.name
    if not path.hops:
        return lambda record: record.get(name)
    refs = [hop.name for hop in path.hops]

    def read(record: dict) -> object:
        for ref in refs:
            parent = lookup(record.get(ref))
            if parent is None:
                return None
            record = parent
        return record.get(name)

    return read


def _compile(cond: Condition, lookup: Lookup, today: date) -> Callable[[dict], bool]:
    if isinstance(cond, Logical):
        parts = [_compile(item, lookup, today) for item in cond.items]
        if cond.op == "AND":
            return lambda record: all(part(record) for part in parts)
        return lambda record: any(part(record) for part in parts)
    if isinstance(cond, Negation):
        inner = _compile(cond.item, lookup, today)
        return lambda record: not inner(record)
    return _compile_comparison(cond, lookup, today)


def _compile_comparison(cond: Comparison, lookup: Lookup, today: date) -> Callable[[dict], bool]:
    raw = _reader(cond.path, lookup)
    kind = _kind(cond.path.field)
    normalize = _NORMALIZE[kind]
    op, lit = cond.op, cond.value

    def value(record: dict) -> object:
        return normalize(raw(record))

    if isinstance(lit, DateLiteral):
        start, end = lit.bounds(today)
        lo: object
        hi: object
        if kind == "datetime":
            lo = datetime(start.year, start.month, start.day, tzinfo=UTC)
            hi = datetime(end.year, end.month, end.day, tzinfo=UTC)
        else:
            lo, hi = start.isoformat(), end.isoformat()
        if op == "!=":
            return lambda record: (v := value(record)) is None or not lo <= v < hi
        bound, test = {
            "=": (None, None), "<": (lo, operator.lt), "<=": (hi, operator.lt),
            ">": (hi, operator.ge), ">=": (lo, operator.ge),
        }[op]
        if test is None:
            return lambda record: (v := value(record)) is not None and lo <= v < hi
        return lambda record: (v := value(record)) is not None and test(v, bound)
    if op == "LIKE":
        matcher = lit.fullmatch
        return lambda record: (v := value(record)) is not None and matcher(v) is not None
    if op == "IN":
        return lambda record: value(record) in lit
    if op == "NOT IN":
        return lambda record: value(record) not in lit
    if lit is None:
        if op == "=":
            return lambda record: value(record) is None
        return lambda record: value(record) is not None
    if op == "=":
        return lambda record: value(record) == lit
    if op == "!=":
        return lambda record: value(record) != lit  # SOQL's != matches nulls too, unlike SQL
    compare = _COMPARE[op]
    return lambda record: (v := value(record)) is not None and compare(v, lit)


def _sort(records: list[dict], keys: list[OrderKey], lookup: Lookup) -> None:
    """Stable sorts from the last key to the first, so each key's direction and null placement hold alone."""
    for key in reversed(keys):
        raw = _reader(key.path, lookup)
        normalize = _NORMALIZE[_kind(key.path.field)]
        # With reverse=True the sort flips, so the rank that puts nulls first flips with it.
        null_rank = (0 if key.nulls_first != key.descending else 2,)

        def sort_key(record: dict, raw: Reader = raw, normalize: Callable = normalize,
                     null_rank: tuple = null_rank) -> tuple:
            v = normalize(raw(record))
            return null_rank if v is None else (1, v)

        records.sort(key=sort_key, reverse=key.descending)


def _row_plan(fields: list[FieldPath]) -> dict:
    """Selected fields as a tree keyed by output name: leaves are Fields, branches (hop, target, subtree)."""
    plan: dict = {}
    for path in fields:
        node = plan
        for hop, target in zip(path.hops, path.targets, strict=True):
            name = hop.relationship_name or hop.name
            branch = node.get(name)
            if not isinstance(branch, tuple):
                branch = node[name] = (hop, target, {})
            node = branch[2]
        node[path.field.name] = path.field
    return plan


def _build(plan: dict, record: dict, sobject: str, base: str, lookup: Lookup) -> dict:
    row: dict = {"attributes": {"type": sobject, "url": f"{base}/{sobject}/{record.get('Id')}"}}
    for name, item in plan.items():
        if isinstance(item, Field):
            row[name] = record.get(item.name)
            continue
        hop, target, subtree = item
        parent = lookup(record.get(hop.name))
        row[name] = None if parent is None else _build(subtree, parent, target.name, base, lookup)
    return row


def execute(
    query: Query,
    source: RecordSource,
    *,
    include_deleted: bool,
    api_version: str,
    now: datetime | None = None,
) -> tuple[int, list[dict]]:
    """Run a parsed query: (totalSize, rows); rows nest parent fields as the REST API does."""
    moment = now or datetime.now(UTC)
    today = (moment if moment.tzinfo is None else moment.astimezone(UTC)).date()
    cache: dict[str, dict | None] = {}

    def lookup(record_id: object) -> dict | None:
        if not isinstance(record_id, str):
            return None
        if record_id not in cache:
            cache[record_id] = source.get(record_id)
        return cache[record_id]

    test = _compile(query.where, lookup, today) if query.where is not None else None
    scanned: Iterable[dict] = source.scan(query.sobject.name, include_deleted)
    matches: Iterator[dict] = (
        r for r in scanned if (include_deleted or not r.get("IsDeleted")) and (test is None or test(r))
    )
    start = query.offset or 0
    stop = None if query.limit is None else start + query.limit
    if query.order_by:
        ordered = list(matches)
        _sort(ordered, query.order_by, lookup)
        selected = ordered[start:stop]
    else:
        selected = list(islice(matches, start, stop))
    if query.is_count:
        return len(selected), []
    base = f"/services/data/v{api_version}/sobjects"
    plan = _row_plan(query.fields)
    rows = [_build(plan, record, query.sobject.name, base, lookup) for record in selected]
    return len(rows), rows


def row_values(query: Query, row: dict) -> list[object]:
    """A nested result row flattened to the values of query.columns (a null parent gives None)."""
    values: list[object] = []
    for column in query.columns:
        value: object = row
        for part in column.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        values.append(value)
    return values
