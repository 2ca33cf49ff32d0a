"""The CloudWatch Logs subscription message: parse_message, iter_messages and their values.

The contract: one message, or many back to back with no delimiter (``}{``), newline-
separated or with whitespace between; braces and ``}{`` inside strings never confuse the
splitter; CONTROL_MESSAGE is recognised and never an error; unknown fields are ignored;
a missing or ill-typed required field is an :class:`EnvelopeError` whose ``field`` names
it; every error is an :class:`AuditSyncError`, never a bare ``orjson.JSONDecodeError``,
``KeyError`` or ``UnicodeDecodeError``.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import json
from collections.abc import Callable, Iterator
from types import MappingProxyType
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from auditsync import (
    AuditSyncError,
    EnvelopeError,
    LogEvent,
    SubscriptionMessage,
    decode_payload,
    iter_messages,
    parse_message,
)
from auditsync import _envelope as envelope
from auditsync.testing import mutations

AUDIT_LINE = (
    "20240101 10:00:00,prod-instance-1,admin,10.0.0.1,35,698024,QUERY,shop,"
    "'SELECT \\'}{\\' FROM t WHERE a = \"{\"',0"
)
DATA: dict[str, Any] = {
    "messageType": "DATA_MESSAGE",
    "owner": "123456789012",
    "logGroup": "/aws/rds/cluster/prod/audit",
    "logStream": "prod-instance-1.audit.log.0",
    "subscriptionFilters": ["to-kinesis"],
    "logEvents": [
        {
            "id": "31953106606966983378809025079804211143289615424298221568",
            "timestamp": 1432826855000,
            "message": AUDIT_LINE,
        },
        {
            "id": "31953106606966983378809025079804211143289615424298221569",
            "timestamp": 1432826855001,
            "message": "second",
        },
        {
            "id": "31953106606966983378809025079804211143289615424298221570",
            "timestamp": 1432826855002,
            "message": "third",
        },
    ],
}
DATA_EXPECTED = SubscriptionMessage(
    message_type="DATA_MESSAGE",
    owner="123456789012",
    log_group="/aws/rds/cluster/prod/audit",
    log_stream="prod-instance-1.audit.log.0",
    subscription_filters=("to-kinesis",),
    log_events=(
        LogEvent(
            "31953106606966983378809025079804211143289615424298221568", 1432826855000, AUDIT_LINE
        ),
        LogEvent(
            "31953106606966983378809025079804211143289615424298221569", 1432826855001, "second"
        ),
        LogEvent(
            "31953106606966983378809025079804211143289615424298221570", 1432826855002, "third"
        ),
    ),
    policy_level=None,
)
CONTROL: dict[str, Any] = {
    "messageType": "CONTROL_MESSAGE",
    "owner": "CloudwatchLogs",
    "logGroup": "",
    "logStream": "",
    "subscriptionFilters": [],
    "logEvents": [
        {
            "id": "",
            "timestamp": 1432826855000,
            "message": "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream.",
        }
    ],
}
TOP_LEVEL_FIELDS = ["messageType", "owner", "logGroup", "logStream", "subscriptionFilters"]
EVENT_FIELDS = ["id", "timestamp", "message"]


def dumps(document: Any) -> bytes:
    return orjson.dumps(document)


def data(**changes: Any) -> dict[str, Any]:
    """A deep copy of DATA with some top-level fields replaced."""
    document = copy.deepcopy(DATA)
    document.update(changes)
    return document


def envelope_error(call: Callable[[], object]) -> EnvelopeError:
    with pytest.raises(EnvelopeError) as info:
        call()
    error = info.value
    assert isinstance(error, AuditSyncError)
    assert isinstance(error, ValueError)
    assert not isinstance(error, orjson.JSONDecodeError)
    assert str(error)
    return error


def all_inputs(document: Any) -> Iterator[tuple[str, Callable[[], object]]]:
    """Every way to hand a document to the envelope: bytes, str, dict, a buffer."""
    raw = dumps(document)
    yield "bytes", lambda: parse_message(raw)
    yield "str", lambda: parse_message(raw.decode())
    yield "dict", lambda: parse_message(document)
    yield "iter", lambda: list(iter_messages(raw))


# -- parse_message ---------------------------------------------------------------------


def test_parse_bytes() -> None:
    assert parse_message(dumps(DATA)) == DATA_EXPECTED


def test_parse_str() -> None:
    assert parse_message(dumps(DATA).decode()) == DATA_EXPECTED


def test_parse_mapping() -> None:
    assert parse_message(DATA) == DATA_EXPECTED
    assert parse_message(MappingProxyType(DATA)) == DATA_EXPECTED


def test_parse_pretty_printed() -> None:
    assert parse_message(json.dumps(DATA, indent=2)) == DATA_EXPECTED
    assert parse_message(" \n" + json.dumps(DATA) + "\n") == DATA_EXPECTED


def test_values_are_typed() -> None:
    message = parse_message(dumps(DATA))
    assert type(message.subscription_filters) is tuple
    assert type(message.log_events) is tuple
    assert all(type(event) is LogEvent for event in message.log_events)
    event = message.log_events[0]
    assert type(event.id) is str
    assert type(event.timestamp) is int
    assert event.timestamp == 1432826855000
    assert event.message == AUDIT_LINE


def test_values_are_frozen_attrs_classes() -> None:
    message = parse_message(dumps(DATA))
    assert attrs.has(SubscriptionMessage)
    assert attrs.has(LogEvent)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        message.owner = "x"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        message.log_events[0].message = "x"  # type: ignore[misc]
    assert hash(message) == hash(parse_message(dumps(DATA)))


def test_non_ascii_and_escapes_survive() -> None:
    text = "SELECT 'é€😀', '\\\\', '\"', '}{', '\u2028', '\x00'"
    message = parse_message(dumps(data(logEvents=[{"id": "1", "timestamp": 1, "message": text}])))
    assert message.log_events[0].message == text


def test_empty_log_events_and_filters() -> None:
    message = parse_message(dumps(data(logEvents=[], subscriptionFilters=[])))
    assert message.log_events == ()
    assert message.subscription_filters == ()


def test_several_subscription_filters() -> None:
    message = parse_message(dumps(data(subscriptionFilters=["a", "b", "c"])))
    assert message.subscription_filters == ("a", "b", "c")


# -- control messages ------------------------------------------------------------------


def test_control_message_is_recognised() -> None:
    for _name, call in all_inputs(CONTROL):
        result = call()
        message = result[0] if isinstance(result, list) else result
        assert isinstance(message, SubscriptionMessage)
        assert message.is_control
        assert message.owner == "CloudwatchLogs"
        assert message.log_group == ""
        assert message.log_stream == ""
        assert message.subscription_filters == ()
        assert len(message.log_events) == 1
        assert message.log_events[0].message.startswith(
            "CWL CONTROL MESSAGE: Checking health of destination"
        )


def test_data_message_is_not_control() -> None:
    assert not parse_message(DATA).is_control


def test_control_message_between_data_messages() -> None:
    blob = dumps(DATA) + dumps(CONTROL) + b"\n" + dumps(DATA)
    assert [m.is_control for m in iter_messages(blob)] == [False, True, False]


def test_control_message_with_policy_level() -> None:
    message = parse_message({**CONTROL, "policyLevel": "ACCOUNT_LEVEL_POLICY"})
    assert message.is_control
    assert message.policy_level == "ACCOUNT_LEVEL_POLICY"


# -- unknown fields --------------------------------------------------------------------


def test_policy_level_is_exposed() -> None:
    message = parse_message(dumps(data(policyLevel="ACCOUNT_LEVEL_POLICY")))
    assert message.policy_level == "ACCOUNT_LEVEL_POLICY"
    assert attrs.evolve(message, policy_level=None) == DATA_EXPECTED


def test_policy_level_absent_is_none() -> None:
    assert parse_message(DATA).policy_level is None


def test_extracted_fields_and_unknown_fields_are_ignored() -> None:
    document = data(
        policyLevel="ACCOUNT_LEVEL_POLICY",
        somethingNew={"nested": [1, 2, {"x": None}]},
        another=None,
        number=1.5,
    )
    for event in document["logEvents"]:
        event["extractedFields"] = {"@timestamp": "2024-01-01", "count": 3}
        event["unknown"] = [True, False]
    for _name, call in all_inputs(document):
        result = call()
        message = result[0] if isinstance(result, list) else result
        assert isinstance(message, SubscriptionMessage)
        assert attrs.evolve(message, policy_level=None) == DATA_EXPECTED


# -- required fields -------------------------------------------------------------------

ILL_TYPED_STR: list[Any] = [None, 1, 1.5, True, [], {}, ["x"]]
ILL_TYPED_LIST: list[Any] = [None, 1, True, "x", {}, {"0": "x"}]
ILL_TYPED_INT: list[Any] = [None, True, False, 1.0, 1432826855000.0, "1432826855000", [], {}]


@pytest.mark.parametrize("name", [*TOP_LEVEL_FIELDS, "logEvents"])
def test_missing_top_level_field(name: str) -> None:
    document = data()
    del document[name]
    for _how, call in all_inputs(document):
        assert envelope_error(call).field == name


@pytest.mark.parametrize("name", ["messageType", "owner", "logGroup", "logStream"])
@pytest.mark.parametrize("value", ILL_TYPED_STR, ids=repr)
def test_ill_typed_string_field(name: str, value: Any) -> None:
    for _how, call in all_inputs(data(**{name: value})):
        assert envelope_error(call).field == name


@pytest.mark.parametrize("name", ["subscriptionFilters", "logEvents"])
@pytest.mark.parametrize("value", ILL_TYPED_LIST, ids=repr)
def test_ill_typed_list_field(name: str, value: Any) -> None:
    for _how, call in all_inputs(data(**{name: value})):
        assert envelope_error(call).field == name


@pytest.mark.parametrize("value", ILL_TYPED_STR[:-1], ids=repr)
def test_ill_typed_subscription_filter(value: Any) -> None:
    for _how, call in all_inputs(data(subscriptionFilters=["ok", value])):
        assert envelope_error(call).field == "subscriptionFilters[1]"


@pytest.mark.parametrize("value", [None, 1, "x", [], ["id", "1"]], ids=repr)
def test_log_event_that_is_not_an_object(value: Any) -> None:
    document = data()
    document["logEvents"][2] = value
    for _how, call in all_inputs(document):
        assert envelope_error(call).field == "logEvents[2]"


@pytest.mark.parametrize("name", EVENT_FIELDS)
def test_missing_log_event_field(name: str) -> None:
    document = data()
    del document["logEvents"][2][name]
    for _how, call in all_inputs(document):
        error = envelope_error(call)
        assert error.field == f"logEvents[2].{name}"
        assert f"logEvents[2].{name}" in str(error)


@pytest.mark.parametrize(
    ("name", "value"),
    [("id", v) for v in ILL_TYPED_STR if type(v) is not int]  # an int id is read as text
    + [("message", v) for v in ILL_TYPED_STR]
    + [("timestamp", v) for v in ILL_TYPED_INT],
    ids=repr,
)
def test_ill_typed_log_event_field(name: str, value: Any) -> None:
    document = data()
    document["logEvents"][2][name] = value
    for _how, call in all_inputs(document):
        assert envelope_error(call).field == f"logEvents[2].{name}"


def test_an_integer_id_is_read_as_its_decimal_text() -> None:
    """moto writes logEvents[].id as a JSON integer (0, 1, 2, ...); AWS writes a string."""
    document = data()
    for number, item in enumerate(document["logEvents"]):
        item["id"] = [0, 2**64 - 1, 7][number % 3]
    for _how, call in all_inputs(document):
        result = call()
        message = result[0] if isinstance(result, list) else result
        assert [event.id for event in message.log_events][:3] == ["0", str(2**64 - 1), "7"]
    # In a dict any integer is exact; in JSON text the parser reads one beyond 64 bits as a
    # float, which is refused rather than rounded.
    document["logEvents"][0]["id"] = 2**200
    assert parse_message(document).log_events[0].id == str(2**200)
    raw = json.dumps(document).encode()
    assert envelope_error(lambda: parse_message(raw)).field == "logEvents[0].id"


def test_bool_is_not_a_timestamp() -> None:
    document = data()
    document["logEvents"][0]["timestamp"] = True
    assert envelope_error(lambda: parse_message(document)).field == "logEvents[0].timestamp"
    raw = dumps(DATA).replace(b'"timestamp":1432826855001', b'"timestamp":false')
    assert envelope_error(lambda: parse_message(raw)).field == "logEvents[1].timestamp"


def test_first_bad_event_is_named() -> None:
    document = data()
    del document["logEvents"][1]["message"]
    del document["logEvents"][2]["id"]
    assert envelope_error(lambda: parse_message(document)).field == "logEvents[1].message"


@pytest.mark.parametrize("top", [b"[]", b"1", b'"x"', b"null", b"true", b"[{}]"])
def test_top_level_that_is_not_an_object(top: bytes) -> None:
    envelope_error(lambda: parse_message(top))
    envelope_error(lambda: list(iter_messages(top)))


@pytest.mark.parametrize(
    "raw",
    [b"", b" ", b"{", b"{}}", b'{"a":', b"\xff\xfe", b'{"a": "\xff"}', b"NaN", b"{'a': 1}"],
)
def test_not_json(raw: bytes) -> None:
    envelope_error(lambda: parse_message(raw))
    envelope_error(lambda: parse_message(raw.decode("latin-1")))


@pytest.mark.parametrize("raw", [b"{", b'{"a":', b"\xff\xfe", b"}{", b"]"])
def test_not_json_in_a_stream(raw: bytes) -> None:
    envelope_error(lambda: list(iter_messages(dumps(DATA) + raw)))


def test_lone_surrogate_in_text_is_an_envelope_error() -> None:
    envelope_error(lambda: parse_message('{"messageType": "\ud800"}'))


# -- iter_messages ---------------------------------------------------------------------


def test_iter_one_message() -> None:
    assert list(iter_messages(dumps(DATA))) == [DATA_EXPECTED]


def test_iter_returns_an_iterator() -> None:
    messages = iter_messages(dumps(DATA) + dumps(DATA))
    assert iter(messages) is messages
    assert next(messages) == DATA_EXPECTED


def test_iter_empty_and_blank_buffers() -> None:
    assert list(iter_messages(b"")) == []
    assert list(iter_messages(b" \n\r\n\t")) == []


@pytest.mark.parametrize(
    "separator", [b"", b"\n", b"\r\n", b" ", b"\t", b"\n\n", b" \t\r\n "], ids=repr
)
def test_iter_concatenated(separator: bytes) -> None:
    blob = separator.join([dumps(DATA), dumps(CONTROL), dumps(DATA)]) + separator
    assert list(iter_messages(blob)) == [DATA_EXPECTED, parse_message(CONTROL), DATA_EXPECTED]


def test_iter_leading_and_trailing_whitespace() -> None:
    assert list(iter_messages(b"\n  " + dumps(DATA) + b"\n\n")) == [DATA_EXPECTED]


def test_iter_pretty_printed_messages() -> None:
    blob = (json.dumps(DATA, indent=2) + json.dumps(CONTROL, indent=4)).encode()
    assert list(iter_messages(blob)) == [DATA_EXPECTED, parse_message(CONTROL)]


@pytest.mark.parametrize(
    "text",
    [
        "}{",
        "}",
        "{",
        '"}{"',
        '\\"}{\\"',
        "\\",
        "\\\\",
        "}\n{",
        '{"messageType":"DATA_MESSAGE"}',
        "]}{[",
    ],
)
def test_braces_inside_strings_do_not_split(text: str) -> None:
    document = data(logEvents=[{"id": "}{", "timestamp": 1, "message": text}], owner=text)
    blob = dumps(document) + dumps(document) + json.dumps(document).encode()
    messages = list(iter_messages(blob))
    assert len(messages) == 3
    assert all(m.log_events[0].message == text for m in messages)
    assert all(m.owner == text for m in messages)


def test_firehose_object_many_members_many_messages() -> None:
    """Firehose → S3: gzip members back to back, messages inside with no delimiter."""
    documents = [data(logStream=f"prod-instance-{i}") for i in range(6)]
    members = [gzip.compress(dumps(documents[i]) + dumps(documents[i + 1])) for i in (0, 2, 4)]
    messages = list(iter_messages(decode_payload(b"".join(members))))
    assert [m.log_stream for m in messages] == [f"prod-instance-{i}" for i in range(6)]


def test_iter_error_names_the_field_and_the_message_offset() -> None:
    bad = data()
    del bad["logEvents"][2]["timestamp"]
    first = dumps(DATA) + b"\n"
    messages = iter_messages(first + dumps(bad))
    assert next(messages) == DATA_EXPECTED  # the good message comes out before the error
    error = envelope_error(lambda: next(messages))
    assert error.field == "logEvents[2].timestamp"
    assert error.offset == len(first)


def test_iter_json_error_has_an_offset_in_the_buffer() -> None:
    blob = dumps(DATA) + b'{"messageType": }'
    error = envelope_error(lambda: list(iter_messages(blob)))
    assert error.offset is not None
    assert len(dumps(DATA)) <= error.offset <= len(blob)


@pytest.mark.parametrize("other", [b"1", b"[]", b'"x"', b"null"])
def test_iter_non_object_after_a_message(other: bytes) -> None:
    envelope_error(lambda: list(iter_messages(dumps(DATA) + b"\n" + other)))


# -- bugs found in review, and fixed ------------------------------------------------------


@pytest.mark.parametrize("separator", [b"", b"\n"], ids=repr)
def test_non_ascii_message_followed_by_another(separator: bytes) -> None:
    document = data(logEvents=[{"id": "1", "timestamp": 1, "message": "SELECT 'é€'"}])
    blob = dumps(document) + separator + dumps(document)
    assert len(list(iter_messages(blob))) == 2


def test_non_ascii_error_offset_is_a_byte_offset() -> None:
    document = data(logEvents=[{"id": "1", "timestamp": 1, "message": "ééééé"}])
    bad = data()
    del bad["owner"]
    first = dumps(document) + b"\n"
    error = envelope_error(lambda: list(iter_messages(first + dumps(bad))))
    assert error.field == "owner"
    assert error.offset == len(first)


# -- strategies of raw JSON documents (auditsync.testing makes message objects) --------

EVENT_KEYS = frozenset(EVENT_FIELDS)
MESSAGE_KEYS = frozenset([*TOP_LEVEL_FIELDS, "logEvents", "policyLevel"])


def json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3)
        ),
        max_leaves=6,
    )


def unknown_fields(
    known: frozenset[str], text: st.SearchStrategy[str]
) -> st.SearchStrategy[dict[str, Any]]:
    keys = text.filter(lambda key: key not in known)
    return st.dictionaries(keys, json_values(text), max_size=2)


def log_event_documents(text: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda known, extra: {**extra, **known},
        st.fixed_dictionaries(
            {
                "id": text,
                "timestamp": st.integers(-(2**63), 2**63 - 1),
                "message": text,
            },
            optional={"extractedFields": st.dictionaries(text, text, max_size=2)},
        ),
        unknown_fields(EVENT_KEYS | {"extractedFields"}, text),
    )


def message_documents(
    text: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    text = st.text() if text is None else text
    return st.builds(
        lambda known, extra: {**extra, **known},
        st.fixed_dictionaries(
            {
                "messageType": st.sampled_from(["DATA_MESSAGE", "CONTROL_MESSAGE"]) | text,
                "owner": text,
                "logGroup": text,
                "logStream": text,
                "subscriptionFilters": st.lists(text, max_size=3),
                "logEvents": st.lists(log_event_documents(text), max_size=3),
            },
            optional={"policyLevel": text},
        ),
        unknown_fields(MESSAGE_KEYS, text),
    )


def expected(document: dict[str, Any]) -> SubscriptionMessage:
    return SubscriptionMessage(
        message_type=document["messageType"],
        owner=document["owner"],
        log_group=document["logGroup"],
        log_stream=document["logStream"],
        subscription_filters=tuple(document["subscriptionFilters"]),
        log_events=tuple(
            LogEvent(e["id"], e["timestamp"], e["message"]) for e in document["logEvents"]
        ),
        policy_level=document.get("policyLevel"),
    )


SERIALIZERS: dict[str, Callable[[Any], bytes]] = {
    "orjson": orjson.dumps,
    "json-utf8": lambda d: json.dumps(d, ensure_ascii=False).encode(),
    "json-ascii": lambda d: json.dumps(d).encode(),
    "json-indented": lambda d: json.dumps(d, ensure_ascii=False, indent=1).encode(),
}
separators = st.text(" \t\r\n", max_size=3)


def concatenate(documents: list[dict[str, Any]], gaps: list[str], serializer: str) -> bytes:
    dump = SERIALIZERS[serializer]
    blob = b""
    for index, document in enumerate(documents):
        gap = gaps[index % len(gaps)] if gaps else ""
        blob += gap.encode() + dump(document)
    return blob + (gaps[-1].encode() if gaps else b"")


# -- properties ------------------------------------------------------------------------


@given(document=message_documents(), serializer=st.sampled_from(sorted(SERIALIZERS)))
def test_parse_any_message(document: dict[str, Any], serializer: str) -> None:
    raw = SERIALIZERS[serializer](document)
    assert parse_message(raw) == expected(document)
    assert parse_message(raw.decode()) == expected(document)
    assert parse_message(document) == expected(document)
    assert list(iter_messages(raw)) == [expected(document)]


@given(
    documents=st.lists(message_documents(), max_size=5),
    gaps=st.lists(separators, max_size=4),
    serializer=st.sampled_from(sorted(SERIALIZERS)),
)
@example(documents=[data(owner="é"), data(owner="é")], gaps=[], serializer="orjson")
def test_iter_any_concatenation(
    documents: list[dict[str, Any]], gaps: list[str], serializer: str
) -> None:
    blob = concatenate(documents, gaps, serializer)
    assert list(iter_messages(blob)) == [expected(d) for d in documents]


@given(
    documents=st.lists(message_documents(st.text(st.characters(codec="ascii"))), max_size=5),
    gaps=st.lists(separators, max_size=4),
    serializer=st.sampled_from(sorted(SERIALIZERS)),
)
@example(
    documents=[data(owner='}{"\\'), data(owner="{"), data(owner="}")], gaps=[], serializer="orjson"
)
def test_iter_any_concatenation_ascii(
    documents: list[dict[str, Any]], gaps: list[str], serializer: str
) -> None:
    """The same property over ASCII text, which the splitter handles today."""
    blob = concatenate(documents, gaps, serializer)
    assert list(iter_messages(blob)) == [expected(d) for d in documents]


@given(
    documents=st.lists(message_documents(), max_size=5),
    gaps=st.lists(separators, max_size=4),
    indent=st.none() | st.integers(0, 2),
)
def test_iter_any_concatenation_escaped_to_ascii(
    documents: list[dict[str, Any]], gaps: list[str], indent: int | None
) -> None:
    """Any text, escaped to ASCII by json.dumps: splitting works today."""
    blob = b""
    for index, document in enumerate(documents):
        blob += (gaps[index % len(gaps)] if gaps else "").encode()
        blob += json.dumps(document, indent=indent).encode()
    assert list(iter_messages(blob)) == [expected(d) for d in documents]


def _only_envelope_errors(call: Callable[[], object]) -> None:
    with contextlib.suppress(AuditSyncError):
        call()


@given(raw=st.binary())
@example(raw=b"{}{")
@example(raw=b"{} {}")
@example(raw=b"[]{}")
def test_arbitrary_bytes_raise_only_envelope_errors(raw: bytes) -> None:
    _only_envelope_errors(lambda: parse_message(raw))
    _only_envelope_errors(lambda: list(iter_messages(raw)))


@given(text=st.text(st.characters(categories=["Cs"]) | st.characters()))
def test_arbitrary_text_raises_only_envelope_errors(text: str) -> None:
    _only_envelope_errors(lambda: parse_message(text))
    _only_envelope_errors(lambda: list(iter_messages(text.encode("utf-8", "surrogatepass"))))


@given(value=json_values(st.text()))
def test_arbitrary_json_raises_only_envelope_errors(value: Any) -> None:
    raw = orjson.dumps(value)
    _only_envelope_errors(lambda: parse_message(raw))
    _only_envelope_errors(lambda: list(iter_messages(raw + raw)))
    if isinstance(value, dict):
        _only_envelope_errors(lambda: parse_message(value))


#: Bytes that matter to a JSON reader, inserted beside random ones.
JSON_BYTES = st.sampled_from([b"{", b"}", b'"', b"\\"])


@given(document=message_documents(), more=st.integers(0, 2), draws=st.data())
def test_mutated_messages_raise_only_envelope_errors(
    document: dict[str, Any], more: int, draws: st.DataObject
) -> None:
    raw = orjson.dumps(document) * (more + 1)
    mutated = draws.draw(mutations(raw, JSON_BYTES))
    _only_envelope_errors(lambda: parse_message(mutated))
    _only_envelope_errors(lambda: parse_message(mutated.decode("utf-8", "replace")))
    _only_envelope_errors(lambda: list(iter_messages(mutated)))


def render(path: list[str | int]) -> str:
    """A path into a message the way EnvelopeError.field writes it: logEvents[2].id."""
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text


@given(document=message_documents(), draws=st.data())
def test_mutated_structure_names_the_field(document: dict[str, Any], draws: st.DataObject) -> None:
    """Delete or replace one value anywhere: it parses, or the error names that value,
    one of its parents, or (for a replacement) something inside the new value."""
    path: list[str | int] = []
    node: Any = document
    while isinstance(node, (dict, list)) and node and (not path or draws.draw(st.booleans())):
        keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
        key = draws.draw(st.sampled_from(keys))
        path.append(key)
        node = node[key]
    if not path:
        return
    parent: Any = document
    for key in path[:-1]:
        parent = parent[key]
    if draws.draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draws.draw(json_values(st.text()))
    names = {render(path[:length]) for length in range(1, len(path) + 1)}
    calls: list[Callable[[], object]] = [
        lambda: parse_message(orjson.dumps(document)),
        lambda: parse_message(document),
    ]
    for call in calls:
        field: str | None = "(parsed)"
        try:
            call()
        except EnvelopeError as error:
            field = error.field
        inside = render(path)
        assert (
            field == "(parsed)"
            or field in names
            or (field is not None and field.startswith((inside + "[", inside + ".")))
        ), (field, names)


@pytest.mark.parametrize(
    "bad",
    [b'{"bad": "cut short', b'{"bad": 1, oops}', b'{"bad": "\xff"}'],
    ids=["cut-short", "fault", "not-utf8"],
)
def test_a_bad_document_is_given_up_at_its_fault_not_tried_at_every_boundary(
    bad: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every later "}{" boundary holds the same fault: trying each one made a single bad
    # document cost time quadratic in the documents after it.
    good = [orjson.dumps({"messageType": "CONTROL_MESSAGE", "n": n}) for n in range(200)]
    data = bad + b"".join(good)
    calls = 0
    loads = orjson.loads

    def counting(value: Any) -> Any:
        nonlocal calls
        calls += 1
        return loads(value)

    monkeypatch.setattr(envelope.orjson, "loads", counting)
    assert envelope.read_document(data) is None
    assert calls <= 2
    found = list(envelope.iter_json(data))
    assert isinstance(found[0][2], EnvelopeError)
    assert [value for _, _, value in found[1:]] == [orjson.loads(doc) for doc in good]


# --- linear time however many "}{" the text holds (issue 16) ------------------------------------


@given(
    documents=st.lists(
        message_documents(st.text(st.sampled_from(list('}{"\\[] \n,:a')), max_size=16)),
        max_size=5,
    ),
    gaps=st.lists(separators, max_size=4),
    serializer=st.sampled_from(sorted(SERIALIZERS)),
)
def test_iter_any_concatenation_of_text_full_of_brackets(
    documents: list[dict[str, Any]], gaps: list[str], serializer: str
) -> None:
    blob = concatenate(documents, gaps, serializer)
    assert list(iter_messages(blob)) == [expected(d) for d in documents]


class Work:
    """Counts the bytes handed to the parser and the tokens the bracket scan reads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.parsed = 0
        self.scanned = 0
        loads, token = orjson.loads, envelope._TOKEN

        def counting_loads(value: Any) -> Any:
            self.parsed += len(value)
            return loads(value)

        class CountingToken:
            def finditer(inner, data: bytes, start: int) -> Iterator[Any]:
                for match in token.finditer(data, start):
                    self.scanned += 1
                    yield match

        monkeypatch.setattr(envelope.orjson, "loads", counting_loads)
        monkeypatch.setattr(envelope, "_TOKEN", CountingToken())


def query_message(number: int, query: str) -> bytes:
    line = f"20240131 14:02:07,db1,app,h,1,{number},QUERY,shop,'{query}',0"
    return orjson.dumps(data(logEvents=[{"id": str(number), "timestamp": 0, "message": line}]))


@pytest.mark.parametrize("boundaries", [1_000, 4_000])
def test_splitting_is_linear_in_the_boundaries_inside_query_text(
    boundaries: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = "select '" + "}{" * boundaries + "'"
    blob = b"".join(query_message(number, query) for number in range(20))
    work = Work(monkeypatch)
    messages = list(iter_messages(blob))
    assert len(messages) == 20
    # Each document parsed a bounded number of times, not once per "}{" before its end.
    assert work.parsed <= 4 * len(blob)
    assert work.scanned <= 2 * len(blob)


@pytest.mark.parametrize(
    "junk",
    [b'{"a":"}', b'{"messageType":"', b'{["}{["', b'{"\\"}{"', b'{"messageType"{', b"{[}"],
    ids=["open-strings", "openings", "brackets-in-strings", "escapes", "nested", "unbalanced"],
)
def test_junk_made_of_unfinished_documents_costs_linear_work(
    junk: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = orjson.dumps(data())
    blob = good + junk * 5_000 + b"}" * 5_000 + good
    work = Work(monkeypatch)
    found = list(envelope.iter_json(blob))
    assert found[0][2] == orjson.loads(good)
    assert any(isinstance(value, EnvelopeError) for _, _, value in found)
    # Nothing is dropped: what is not a document is a stretch of junk, in order.
    assert [(start, end) for start, end, _ in found] == sorted(
        (start, end) for start, end, _ in found
    )
    assert found[-1][1] == len(blob)
    assert work.parsed <= 8 * len(blob)
    assert work.scanned <= 8 * len(blob)


def test_a_document_longer_than_longest_is_refused_after_parsing_only_that_much(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    longest = 2_000
    good = orjson.dumps(data())
    huge = orjson.dumps(data(logEvents=[{"id": "", "timestamp": 0, "message": ""}] * 5_000))
    for blob in (huge, huge + good, good + huge + good, good + huge[:-2] + b"\n" + good):
        work = Work(monkeypatch)
        found = list(envelope.iter_json(blob, longest=longest))
        [error] = [value for _, _, value in found if isinstance(value, EnvelopeError)]
        assert "runs past 2000 bytes" in str(error)
        goods = [value for _, _, value in found if not isinstance(value, EnvelopeError)]
        assert goods == [orjson.loads(good)] * blob.count(good)
        assert found[-1][1] == len(blob)
        # The long document is never parsed whole: a few windows of ``longest`` bytes.
        assert work.parsed < 8 * (longest + len(good)) < len(huge)


@given(
    documents=st.lists(
        message_documents(st.text(st.sampled_from(list('}{"\\[] \n,:a')), max_size=16)),
        min_size=1,
        max_size=5,
    ),
    gaps=st.lists(separators, max_size=4),
    serializer=st.sampled_from(sorted(SERIALIZERS)),
)
def test_a_bound_every_document_keeps_within_changes_nothing(
    documents: list[dict[str, Any]], gaps: list[str], serializer: str
) -> None:
    blob = concatenate(documents, gaps, serializer)
    longest = max(len(SERIALIZERS[serializer](document)) for document in documents) + 8
    bounded = list(envelope.iter_json(blob, longest=longest))
    assert bounded == list(envelope.iter_json(blob))
