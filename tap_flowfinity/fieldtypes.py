"""Flowfinity field values as typed columns: inference, declared types and conversion.

Flowfinity sends almost everything as JSON strings (numbers, currency, dates) and choice
fields as `{"Selection": ...}` objects. Analysts want a choice as text they can group by and
a number as a number, but a guess from the text would be wrong for a phone number or a zip
code, so the tap converts text only where a view's `field_types` declares a type. What the
tap can see without guessing (the shape of a choice) it maps by itself.

Every conversion is lossless or refused: a value that does not fit its column is never
dropped. Under `on_type_error: keep_raw` the typed column gets null and `<field>__raw` gets the
value as sent (text; JSON for anything that is not a string); under `fail` the run stops,
naming the view, the record and the field.

A column's *kind* is read from its JSON schema, so a catalog edited by hand (or
`views[].schema`) drives the conversion just as `field_types` does.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass
from datetime import date, datetime, timezone, tzinfo
from decimal import Decimal, InvalidOperation

from singer_sdk.singerlib.json import serialize_json

from tap_flowfinity.errors import FlowfinityError

# Column kinds, which are also the values `views[].field_types` accepts.
STRING = "string"
INTEGER = "integer"
NUMBER = "number"
BOOLEAN = "boolean"
DATE_TIME = "date-time"
DATE = "date"
CHOICES = "choices"  # multiple choice / check boxes: an array of text
JSON = "json"  # kept as the JSON it arrived as

DECLARABLE_KINDS: tuple[str, ...] = (
    STRING,
    INTEGER,
    NUMBER,
    BOOLEAN,
    DATE_TIME,
    DATE,
    CHOICES,
    JSON,
)
# Kinds whose column cannot take every value: a misfit goes to the side column (or fails).
STRICT_KINDS = frozenset({INTEGER, NUMBER, BOOLEAN, DATE_TIME, DATE, CHOICES})

RAW_SUFFIX = "__raw"
KEEP_RAW = "keep_raw"
FAIL = "fail"
ON_TYPE_ERROR_CHOICES: tuple[str, ...] = (KEEP_RAW, FAIL)

SELECTION = "Selection"

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# The range `to_integer` enforces, said in the schema: targets that size integer columns by it
# (pipelinewise-target-postgres, target-duckdb) then make bigint rather than numeric/hugeint;
# target-postgres makes bigint either way.
INT64_BOUNDS: dict[str, int] = {"minimum": _INT64_MIN, "maximum": _INT64_MAX}
_INTEGER_TEXT = re.compile(r"[+-]?\d+(?:\.0*)?")
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_TRUE_WORDS = frozenset({"true", "yes", "y", "1", "on"})
_FALSE_WORDS = frozenset({"false", "no", "n", "0", "off"})
# ISO 8601 as Flowfinity writes it ("2020-09-06T00:00:00.000"), optionally with an offset.
_DATE_TIME_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,9})?)?)?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
)
# The one form Flowfinity writes, a case of `_DATE_TIME_TEXT` that matches in half its time:
# tried first, the full pattern only for what it does not match.
_FLOWFINITY_DATE_TIME_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}"
)


def property_for_kind(kind: str) -> dict[str, t.Any]:
    """The JSON schema (and so the PostgreSQL column type) of a kind; always nullable."""
    if kind == DATE_TIME:
        return {"type": ["string", "null"], "format": "date-time"}  # timestamp
    if kind == DATE:
        return {"type": ["string", "null"], "format": "date"}  # date
    if kind == CHOICES:
        return {"type": ["array", "null"], "items": {"type": "string"}}  # text[]
    if kind == JSON:
        return {"type": ["object", "array", "string", "number", "boolean", "null"]}  # jsonb
    if kind == INTEGER:
        return {"type": [INTEGER, "null"], **INT64_BOUNDS}  # bigint
    return {"type": [kind, "null"]}  # text, numeric, boolean


RAW_PROPERTY: dict[str, t.Any] = {"type": ["string", "null"]}


def kind_of(property_schema: t.Mapping[str, t.Any]) -> str:
    """Which conversion a column's JSON schema asks for (JSON: leave the value as sent)."""
    raw_types = property_schema.get("type")
    if raw_types is None or "anyOf" in property_schema or "oneOf" in property_schema:
        return JSON
    types = {raw_types} if isinstance(raw_types, str) else set(raw_types)
    types.discard("null")
    if len(types) != 1:
        return JSON
    (only,) = types
    if only == "string":
        fmt = property_schema.get("format")
        if fmt == "date-time":
            return DATE_TIME
        if fmt == "date":
            return DATE
        return STRING
    if only == "array":
        items = property_schema.get("items")
        item_types = items.get("type") if isinstance(items, dict) else None
        if (
            item_types == "string"
            or item_types == ["string"]
            or (isinstance(item_types, list) and set(item_types) == {"string", "null"})
        ):
            return CHOICES
        return JSON
    if only in {INTEGER, NUMBER, BOOLEAN}:
        return only
    return JSON


# Inference


def is_selection(value: t.Any) -> bool:
    """A choice field's value: an object whose only key is "Selection"."""
    return type(value) is dict and len(value) == 1 and SELECTION in value


def shape_of(value: t.Any, *, flatten: bool) -> str | None:
    """What one value says about its field's kind (None: nothing, e.g. null)."""
    if value is None:
        return None
    if is_selection(value):
        if not flatten:
            return "object"
        chosen = value[SELECTION]
        if chosen is None:
            return "choice?"  # a choice field, single or multiple unknown
        if isinstance(chosen, str):
            return "choice"
        if isinstance(chosen, list):
            return CHOICES
        return "other"
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, (float, Decimal)):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, list):
        return "array"
    return "object"


def infer_property(shapes: t.AbstractSet[str | None]) -> dict[str, t.Any]:
    """The column for the shapes seen in a sample, chosen so that later values still fit.

    Text is the fallback for anything unclear (a field empty in every sampled record, mixed
    shapes): a text column takes any value without loss (non-strings as JSON text), and
    target-postgres never has to alter it when a later sample suggests another type.
    """
    seen = {s for s in shapes if s is not None and s != "choice?"}
    if not seen:
        return property_for_kind(STRING)
    if seen <= {"choice", STRING}:
        return property_for_kind(STRING)
    if CHOICES in seen and seen <= {CHOICES, "choice", STRING}:
        return property_for_kind(CHOICES)
    if seen <= {INTEGER, NUMBER}:
        return property_for_kind(NUMBER if NUMBER in seen else INTEGER)
    if seen == {BOOLEAN}:
        return property_for_kind(BOOLEAN)
    if seen == {"array"}:
        return {"type": ["array", "null"]}  # no "items": jsonb
    if seen == {"object"}:
        return {"type": ["object", "null"], "additionalProperties": True}  # jsonb
    return property_for_kind(STRING)


# Conversion


class TypeMismatch(ValueError):
    """A value that its column's kind cannot hold without loss."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(kind)


def raw_text(value: t.Any) -> str:
    """The value as sent, as text: a string unchanged, anything else as its exact JSON."""
    if isinstance(value, str):
        return value
    return serialize_json(value, ensure_ascii=False)


def _unwrap(value: t.Any) -> t.Any:
    return value[SELECTION] if is_selection(value) else value


def to_text(value: t.Any, *, flatten: bool) -> str | None:
    """Text column: strings as sent; a single choice as its text; anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    if flatten and is_selection(value):
        chosen = value[SELECTION]
        if chosen is None or chosen == []:
            return None  # nothing chosen
        if isinstance(chosen, str):
            return chosen
        if isinstance(chosen, list) and len(chosen) == 1 and isinstance(chosen[0], str):
            return chosen[0]
        return raw_text(chosen)
    if isinstance(value, bool):
        return "true" if value else "false"
    return raw_text(value)


def to_choices(value: t.Any) -> list[str | None] | None:
    """Array of text: `[]` stays `[]` (nothing ticked), a single text becomes `[text]`."""
    value = _unwrap(value)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return [v if v is None or isinstance(v, str) else raw_text(v) for v in value]
    raise TypeMismatch(CHOICES)


def to_integer(value: t.Any) -> int | None:
    """A whole number that fits PostgreSQL's bigint; "25" and "25.00" are 25."""
    value = _unwrap(value)
    if value is None:
        return None
    result: int | None = None
    if isinstance(value, bool):
        result = None
    elif isinstance(value, int):
        result = value
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        result = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if _INTEGER_TEXT.fullmatch(text):
            result = int(text.split(".")[0])
    if result is None or not _INT64_MIN <= result <= _INT64_MAX:
        raise TypeMismatch(INTEGER)
    return result


def to_number(value: t.Any) -> int | Decimal | None:
    """An exact decimal number (never a float): "99.90" stays 99.90."""
    value = _unwrap(value)
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeMismatch(NUMBER)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value.is_finite():
        return value
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid text
            pass
    raise TypeMismatch(NUMBER)


def to_boolean(value: t.Any) -> bool | None:
    """true/false, yes/no, 1/0, on/off; a check box `["Yes"]` is true and `[]` false."""
    value = _unwrap(value)
    if value is None:
        return None
    if isinstance(value, list):
        if not value:
            return False
        if len(value) != 1:
            raise TypeMismatch(BOOLEAN)
        value = value[0]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise TypeMismatch(BOOLEAN)


def _parse_date_time(value: t.Any, kind: str) -> datetime:
    if not isinstance(value, str):
        raise TypeMismatch(kind)
    text = value.strip()
    if not _DATE_TIME_TEXT.fullmatch(text):
        raise TypeMismatch(kind)
    try:
        return datetime.fromisoformat(text.replace(",", ".") if "," in text else text)
    except ValueError:
        raise TypeMismatch(kind) from None


def to_date_time(value: t.Any, zone: tzinfo | None) -> str | None:
    """ISO 8601. Naive values are in `zone` (converted to UTC) or, without one, kept as sent.

    A value that carries its own offset is converted to UTC whatever the setting: PostgreSQL's
    `timestamp` column would otherwise keep its local wall time and drop the offset.
    """
    if type(value) is not str:  # the common case, text, skips the unwrapping
        value = _unwrap(value)
        if value is None:
            return None
    parsed = _parse_date_time(value, DATE_TIME)
    if parsed.tzinfo is None:
        if zone is None:
            return t.cast(str, value)
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(timezone.utc).isoformat()


def to_date(value: t.Any) -> str | None:
    """A calendar date: "2020-09-06T00:00:00.000" is 2020-09-06; a time of day is a misfit."""
    value = _unwrap(value)
    if value is None:
        return None
    parsed = _parse_date_time(value, DATE)
    if parsed.tzinfo is not None or parsed.time() != datetime.min.time():
        raise TypeMismatch(DATE)
    return date(parsed.year, parsed.month, parsed.day).isoformat()


@dataclass(frozen=True)
class Converter:
    """How one column's values are converted, per the column's kind and the view's settings."""

    kind: str
    flatten: bool = True
    zone: tzinfo | None = None

    def convert(self, value: t.Any) -> t.Any:
        """The column's value; raises TypeMismatch for a value the column cannot hold.

        An empty or blank string in a typed (non-text) column is null: it carries no value,
        and sending it to the side column would flag every empty form field as an error.
        """
        kind = self.kind
        if kind == STRING:
            return to_text(value, flatten=self.flatten)
        if kind == JSON:
            return _unwrap(value) if self.flatten else value
        if type(value) is str and not value.strip():
            return None
        if kind == DATE_TIME:  # the most common typed column (CreatedOn) first
            return to_date_time(value, self.zone)
        return _TYPED[kind](value)


# The kinds whose conversion needs nothing but the value.
_TYPED: dict[str, t.Callable[[t.Any], t.Any]] = {
    INTEGER: to_integer,
    NUMBER: to_number,
    BOOLEAN: to_boolean,
    DATE: to_date,
    CHOICES: to_choices,
}


class FieldTypeError(FlowfinityError):
    """`on_type_error: fail` and a value that does not fit its column."""


@dataclass
class Misfit:
    """A value its column could not hold: the field, the value as sent, the kind expected."""

    field: str
    value: t.Any
    kind: str


# What a column does with one value (not null), per kind: the converted value, or
# TypeMismatch. `_text_handler` and `_typed_handlers` build them once per schema, for the
# view's settings, with the common cases (text, a choice, a date-time) first and inline.
Handler = t.Callable[[t.Any], t.Any]


def _text_handler(flatten: bool) -> Handler:
    """A text column's handler of a value that is not text (text stays as it is)."""
    if not flatten:
        return lambda value: to_text(value, flatten=False)

    def text(value: t.Any) -> t.Any:
        if type(value) is dict and len(value) == 1:  # a single choice, the common case
            chosen = value.get(SELECTION, value)
            if type(chosen) is str:
                return chosen
        return to_text(value, flatten=True)

    return text


def _date_time_of_text(zone: tzinfo | None) -> Handler:
    """`Converter(DATE_TIME, zone=zone).convert` for text, with no call in the common case."""
    common, pattern = _FLOWFINITY_DATE_TIME_TEXT.fullmatch, _DATE_TIME_TEXT.fullmatch
    parse, utc = datetime.fromisoformat, timezone.utc

    def date_time(value: str) -> str | None:
        text = value.strip()
        if not text:
            return None
        if common(text) is None and pattern(text) is None:
            raise TypeMismatch(DATE_TIME)
        try:
            parsed = parse(text.replace(",", ".") if "," in text else text)
        except ValueError:
            raise TypeMismatch(DATE_TIME) from None
        if parsed.tzinfo is None:
            if zone is None:
                return value
            parsed = parsed.replace(tzinfo=zone)
        return parsed.astimezone(utc).isoformat()

    return date_time


def _typed_handlers(converter: Converter) -> tuple[Handler, Handler]:
    """A typed column's handlers: of a value that is not text, and of text."""
    convert = converter.convert
    if converter.kind == DATE_TIME:
        return convert, _date_time_of_text(converter.zone)
    if converter.kind == CHOICES and converter.flatten:

        def choices(value: t.Any) -> t.Any:
            if type(value) is dict and len(value) == 1:  # a multiple choice, the common case
                chosen = value.get(SELECTION, value)
                if type(chosen) is list and set(map(type, chosen)) <= _TEXT_ONLY:
                    return chosen
            return convert(value)

        return choices, convert
    return convert, convert


_TEXT_ONLY = frozenset({str})


class RecordTyper:
    """Converts a record's values in place to the kinds of a stream's schema.

    What each column does is decided once per schema (keyed by the properties object and
    its size, so a schema that gains a field is compiled again), not per value: the schema
    is compiled into one Python function with a line per converted column, each column's
    handlers bound to it (`_compiled_typing`). A record then costs one dictionary lookup per
    converted column and a call only for a value that needs converting (a choice, a
    date-time as text); text in a text column, the most common value, costs a type check.
    A loop over the columns doing the same took half as long again (benchmarks/run.py).
    The per-value rules are `Converter.convert`'s (tests/unit/test_fieldtypes.py compares
    them over random records).
    """

    def __init__(self, *, flatten: bool, zone: tzinfo | None, skip: t.AbstractSet[str]) -> None:
        self.flatten = flatten
        self.zone = zone
        self.skip = frozenset(skip)
        self._key: tuple[int, int] | None = None
        self._typing: t.Callable[[dict[str, t.Any]], list[Misfit]] = _no_typing
        self._raw_columns: tuple[str, ...] = ()

    def _compile(self, properties: t.Mapping[str, t.Any]) -> None:
        # Per converted column: its handler of a value that is not text, and of text (None:
        # text stays as sent, in a text or JSON column).
        columns: list[tuple[str, Handler, Handler | None]] = []
        text = _text_handler(self.flatten)
        for name, schema in properties.items():
            if name in self.skip or not isinstance(schema, dict):
                continue
            kind = kind_of(schema)
            if kind == JSON and not self.flatten:
                continue  # kept exactly as sent
            if kind == STRING:
                columns.append((name, text, None))
                continue
            other, of_text = _typed_handlers(Converter(kind, self.flatten, self.zone))
            columns.append((name, other, None if kind == JSON else of_text))
        self._typing = _compiled_typing(columns)
        self._raw_columns = tuple(
            name
            for name in properties
            if name.endswith(RAW_SUFFIX) and name[: -len(RAW_SUFFIX)] in properties
        )
        self._key = (id(properties), len(properties))

    def convert(self, row: dict[str, t.Any], properties: t.Mapping[str, t.Any]) -> list[Misfit]:
        """Convert `row` in place; return the values that did not fit (their field untouched).

        The misfits come in the record's order for values that are not text, then in the
        schema's order for text in typed columns.
        """
        if self._key != (id(properties), len(properties)):
            self._compile(properties)
        misfits = self._typing(row)
        if len(misfits) > 1:
            return _in_reported_order(misfits, row)
        return misfits

    @property
    def raw_columns(self) -> tuple[str, ...]:
        """The `<field>__raw` side columns of the schema last compiled."""
        return self._raw_columns


def _no_typing(row: dict[str, t.Any]) -> list[Misfit]:
    return []


def _compiled_typing(
    columns: t.Sequence[tuple[str, Handler, Handler | None]],
) -> t.Callable[[dict[str, t.Any]], list[Misfit]]:
    """One function converting a record's `columns` in place, returning the misfits.

    Each column becomes straight-line code: its value looked up once, then the handler of
    text or of anything else called where the value needs one. Column names enter the code
    as `repr` literals (exact for any text) and handlers as the function's globals, so
    nothing of a view's schema is ever read as code.
    """
    namespace: dict[str, t.Any] = {"TypeMismatch": TypeMismatch, "Misfit": Misfit, "str": str}
    lines = ["def typing(row):", "    misfits = []", "    get = row.get"]

    def convert(handler: str, name: str, indent: str) -> list[str]:
        return [
            f"{indent}try:",
            f"{indent}    row[{name!r}] = {handler}(value)",
            f"{indent}except TypeMismatch as exc:",
            f"{indent}    misfits.append(Misfit({name!r}, value, exc.kind))",
        ]

    for index, (name, other, of_text) in enumerate(columns):
        namespace[f"other_{index}"] = other
        lines.append(f"    value = get({name!r})")
        if of_text is None:
            lines.append("    if value is not None and value.__class__ is not str:")
        else:
            namespace[f"of_text_{index}"] = of_text
            lines.append("    if value.__class__ is str:")
            lines += convert(f"of_text_{index}", name, " " * 8)
            lines.append("    elif value is not None:")
        lines += convert(f"other_{index}", name, " " * 8)
    lines.append("    return misfits")
    exec(compile("\n".join(lines), "<record typing>", "exec"), namespace)
    return t.cast(t.Callable[[dict[str, t.Any]], list[Misfit]], namespace["typing"])


def _in_reported_order(misfits: list[Misfit], row: dict[str, t.Any]) -> list[Misfit]:
    """The misfits found in the schema's order, in the order `RecordTyper.convert` reports."""
    position = {name: index for index, name in enumerate(row)}
    others = sorted(
        (m for m in misfits if type(m.value) is not str), key=lambda m: position[m.field]
    )
    return others + [m for m in misfits if type(m.value) is str]
