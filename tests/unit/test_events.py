"""The host-side parser of the programs' ``EVENT key=value ... t=UNIXTIME`` lines."""

from __future__ import annotations

import dataclasses

import pytest

from socketlab.observe.events import Event, parse_line, parse_output, payload


def test_bare_values_become_numbers_or_stay_tokens() -> None:
    line = "listening addr=0.0.0.0:6666 backlog=5 t=1700000000.123456\n"

    event = parse_line(line)

    assert event == Event(
        name="listening",
        fields={"addr": "0.0.0.0:6666", "backlog": 5},
        t=1700000000.123456,
        raw="listening addr=0.0.0.0:6666 backlog=5 t=1700000000.123456",
    )
    assert isinstance(event.fields["backlog"], int)


def test_quoted_values_are_json_decoded() -> None:
    event = parse_line(
        r'error op=connect errno=ECONNREFUSED msg="Connection \"refused\" = no" t=1.5'
    )

    assert event is not None
    assert event.fields == {
        "op": "connect",
        "errno": "ECONNREFUSED",
        "msg": 'Connection "refused" = no',
    }
    assert event.t == 1.5


@pytest.mark.parametrize(
    ("token", "value"),
    [("3", 3), ("-2", -2), ("0.25", 0.25), ("1e5", "1e5"), ("12:34", "12:34"), ("nan", "nan")],
)
def test_number_recognition(token: str, value: object) -> None:
    event = parse_line(f"x v={token} t=0.000001")

    assert event is not None
    assert event.fields["v"] == value
    assert type(event.fields["v"]) is type(value)


def test_empty_data_and_escaped_bytes() -> None:
    empty = parse_line('recv n=0 data="" t=2.000000')
    binary = parse_line(r'recv n=3 data="\u0000\u00ff\n" t=2.000001')

    assert empty is not None
    assert empty.fields == {"n": 0, "data": ""}
    assert binary is not None
    assert payload([binary], "recv") == b"\x00\xff\n"


def test_event_without_fields_or_time() -> None:
    assert parse_line("closed t=3.000000") == Event("closed", {}, 3.0, "closed t=3.000000")
    assert parse_line("closed") == Event("closed", {}, None, "closed")


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   ",
        "Traceback (most recent call last):",
        "hello world",
        "recv n=3 data=hel lo t=1.0",
        'recv data="unterminated t=1.0',
        r'recv data="bad \q escape" t=1.0',
        "recv n==3 t=1.0",
        "recv n=3 t=soon",
        "42 n=3",
        "recv n=3t=1.0",
    ],
)
def test_junk_lines_are_not_events(line: str) -> None:
    assert parse_line(line) is None


def test_event_is_frozen() -> None:
    event = parse_line("closed t=1.0")
    assert event is not None

    with pytest.raises(dataclasses.FrozenInstanceError):
        event.name = "open"  # type: ignore[misc]


def test_parse_output_skips_junk_and_keeps_order() -> None:
    text = (
        "listening addr=127.0.0.1:6666 backlog=5 t=1.000000\n"
        "some stray message\n"
        "accepted peer=127.0.0.1:40000 t=1.100000\r\n"
        "\n"
        'recv n=3 data="hel" t=1.200000\n'
    )

    events = parse_output(text)

    assert [e.name for e in events] == ["listening", "accepted", "recv"]
    assert [e.t for e in events] == [1.0, 1.1, 1.2]


def test_payload_joins_the_pieces_of_one_event_name() -> None:
    events = parse_output(
        "\n".join(
            [
                'recv n=3 data="hel" t=1.0',
                'recv n=3 data="lo," t=1.1',
                'sent n=11 data="hello,world" t=1.15',
                'recv n=3 data="wor" t=1.2',
                'recv n=2 data="ld" t=1.3',
                'recv n=0 data="" t=1.4',
                "closed t=1.5",
            ]
        )
    )

    assert payload(events, "recv") == b"hello,world"
    assert payload(events, "sent") == b"hello,world"
    assert payload(events, "closed") == b""
    assert payload(events, "nothing") == b""


def test_payload_rejects_unquoted_data() -> None:
    events = parse_output("recv n=3 data=123 t=1.0")

    with pytest.raises(TypeError, match="not a quoted string"):
        payload(events, "recv")
