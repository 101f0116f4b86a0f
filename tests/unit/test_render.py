"""Rendering a run, from hand-made events; and the pure parts of programs.py it renders.

The events are literal lines in the programs' format, parsed with events.parse_line, so the
observations are computed from exactly what the programs would print.
"""

from __future__ import annotations

from io import StringIO

import pytest
from rich.console import Console

from socketlab.act.programs import Options, PairRun, client_argv, server_argv
from socketlab.errors import ConfigError
from socketlab.observe.events import Event, parse_line
from socketlab.present.terminal import describe, event_text, observation, side_by_side


def events(*lines: str) -> list[Event]:
    parsed = [parse_line(line) for line in lines]
    assert None not in parsed, lines
    return parsed  # type: ignore[return-value]


def text_of(renderable) -> str:
    buf = StringIO()
    Console(file=buf, width=160, color_system=None).print(renderable)
    return buf.getvalue()


TCP_CLIENT = events(
    'connected local=192.168.33.6:40000 peer=192.168.33.5:6666 t=100.010',
    'sent n=11 data="hello,world" t=100.011',
    'closed t=100.012',
)


def tcp_server(*pieces: str) -> list[Event]:
    lines = ['listening addr=0.0.0.0:6666 backlog=5 t=100.000',
             'accepted peer=192.168.33.6:40000 local=192.168.33.5:6666 t=100.0105']
    for i, piece in enumerate(pieces):
        lines.append(f'recv n={len(piece)} data="{piece}" t={100.020 + i / 1000:.3f}')
    lines += ['recv n=0 data="" t=100.030', 'closed t=100.031']
    return events(*lines)


def tcp_run(server: list[Event], client: list[Event] = TCP_CLIENT) -> PairRun:
    return PairRun(Options(proto="tcp"), server_events=server, client_events=client,
                   server_exit=0, client_exit=0)


# -- observation --------------------------------------------------------------------------
def test_tcp_pieces_joined_equal_what_was_sent():
    run = tcp_run(tcp_server("hel", "lo,", "wor", "ld"))

    assert observation(run) == ("TCP is a byte stream: the client sent 11 bytes, the server read "
                                "11 in 4 recv(3) calls: nothing lost.")


def test_tcp_missing_piece_counts_the_missing_bytes():
    run = tcp_run(tcp_server("hel", "lo,", "ld"))

    assert observation(run) == ("TCP is a byte stream: the client sent 11 bytes, the server read "
                                "8 in 3 recv(3) calls: 3 bytes missing.")


def test_tcp_with_another_receive_size_names_it():
    run = PairRun(Options(proto="tcp", bufsize=1024), server_events=tcp_server("hello,world"),
                  client_events=TCP_CLIENT, server_exit=0)

    assert observation(run).endswith("read 11 in 1 recv(1024) calls: nothing lost.")


UDP_CLIENT = events(
    'sent n=11 data="hello,world" peer=192.168.33.5:6666 t=200.001',
    'sent n=0 data="" peer=192.168.33.5:6666 t=200.002',
    'closed t=200.003',
)


def test_udp_truncated_datagram():
    server = events(
        'listening addr=0.0.0.0:6666 t=200.000',
        'recvfrom n=3 data="hel" peer=192.168.33.6:50000 t=200.0015',
        'recvfrom n=0 data="" peer=192.168.33.6:50000 t=200.0025',
        'stop reason=empty t=200.0026',
        'closed t=200.0027',
    )
    run = PairRun(Options(proto="udp"), server_events=server, client_events=UDP_CLIENT,
                  server_exit=0)

    assert observation(run) == (
        "UDP keeps datagrams: 1 of 1 datagram(s) arrived; recvfrom(3) returned 'hel', so the "
        "server got 3 of the 11 bytes sent: the rest of each datagram is gone.")


def udp_run(bufsize: int, sent: list[str], received: list[str]) -> PairRun:
    client = events(*[f'sent n={len(m)} data="{m}" peer=192.168.33.5:6666 t=200.00{i}'
                      for i, m in enumerate(sent)])
    server = events('listening addr=0.0.0.0:6666 t=200.000',
                    *[f'recvfrom n={len(m)} data="{m}" peer=192.168.33.6:50000 t=200.01{i}'
                      for i, m in enumerate(received)], 'stop reason=count t=200.02')
    return PairRun(Options(proto="udp", bufsize=bufsize, count=len(sent)), server_events=server,
                   client_events=client, server_exit=0, client_exit=0)


def test_udp_datagrams_that_fit_are_never_said_to_be_cut():
    run = udp_run(8, ["hi there"] * 3, ["hi there"] * 3)  # `run udp --bufsize 8 --count 3`

    assert observation(run) == ("UDP keeps datagrams: 3 of 3 datagram(s) arrived, each whole: "
                                "recvfrom(8) had room for every datagram sent, and the server "
                                "got 24 of the 24 bytes sent.")


def test_udp_only_the_longer_datagrams_are_said_to_be_cut():
    run = udp_run(3, ["hi", "hello"], ["hi", "hel"])

    assert observation(run).endswith("the server got 5 of the 7 bytes sent: the rest of each "
                                     "datagram longer than 3 bytes is gone.")


def test_udp_nothing_arrived():
    server = events('listening addr=0.0.0.0:6666 t=200.000', 'stop reason=timeout t=205.0',
                    'closed t=205.001')
    run = PairRun(Options(proto="udp"), server_events=server, client_events=UDP_CLIENT)

    assert observation(run) == ("UDP: none of the 1 datagram(s) sent (11 bytes) reached the "
                                "server's recvfrom().")


def test_udp_with_no_server_concludes_nothing_about_arrival():
    run = PairRun(Options(proto="udp", server=False), client_events=UDP_CLIENT)

    said = observation(run)

    assert said == ("No lab server ran: the client sent 1 datagram(s) (11 bytes) and finished "
                    "without an error: UDP tells the sender nothing about whether they arrived.")
    assert "recvfrom" not in said
    assert "gone" not in said


def test_tcp_with_no_server_but_someone_listening_claims_no_loss():
    run = PairRun(Options(proto="tcp", server=False), client_events=TCP_CLIENT)

    said = observation(run)

    assert said.startswith("No lab server ran: the client connected to 192.168.33.5:6666 and "
                           "sent 11 bytes;")
    assert "missing" not in said


def test_a_server_that_died_is_reported_not_concluded_from():
    server = events('listening addr=0.0.0.0:6666 t=200.000')
    run = PairRun(Options(proto="udp"), server_events=server, client_events=UDP_CLIENT,
                  server_exit=1, server_stderr="Traceback (most recent call last):\n"
                                               "  ...\nMemoryError\n")

    said = observation(run)

    assert said == ("the server program died (exit code 1: MemoryError): no conclusion is "
                    "drawn from this run.")


def test_a_program_stopped_by_its_budget_says_so():
    run = PairRun(Options(proto="tcp"), server_events=tcp_server("hel"),
                  client_events=TCP_CLIENT, server_exit=124)

    assert observation(run).startswith("the server program was stopped at the end of its 20 s")


def test_error_event_shows_the_errno():
    client = events('error op=connect errno=ECONNREFUSED msg="Connection refused" t=300.0')
    run = PairRun(Options(proto="tcp", server=False), client_events=client, client_exit=1)

    assert observation(run) == "connect() failed with ECONNREFUSED (Connection refused)"
    assert run.ok is False


def test_server_error_is_shown_too():
    server = events('error op=bind errno=EADDRINUSE msg="Address already in use" t=1.0')
    run = PairRun(Options(proto="udp"), server_events=server, server_exit=1)

    assert observation(run) == "bind() failed with EADDRINUSE (Address already in use)"


# -- describe and side_by_side ------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('listening addr=0.0.0.0:6666 backlog=5 t=1.0', "bind + listen: waiting on 0.0.0.0:6666"),
        ('accepted peer=10.0.0.6:4000 local=10.0.0.5:6666 t=1.0',
         "accept() -> connection from 10.0.0.6:4000"),
        ('connected local=10.0.0.6:4000 peer=10.0.0.5:6666 t=1.0',
         "connect() -> 10.0.0.5:6666 (from 10.0.0.6:4000)"),
        ('sent n=11 data="hello,world" t=1.0', 'sendall("hello,world") (11 bytes)'),
        ('sent n=3 data="abc" peer=10.0.0.5:6666 t=1.0', 'sendto("abc", 10.0.0.5:6666) -> 3'),
        ('sent n=1400 peer=10.0.0.5:6666 t=1.0', "sendto(1400 bytes, 10.0.0.5:6666) -> 1400"),
        ('recv n=3 data="hel" t=1.0', 'recv(3) -> "hel"'),
        ('recv n=0 data="" t=1.0', 'recv(3) -> "" (peer closed)'),
        ('recvfrom n=3 data="hel" peer=10.0.0.6:5000 t=1.0',
         'recvfrom(3) -> "hel" from 10.0.0.6:5000'),
        ('closed t=1.0', "close()"),
        ('stop reason=empty t=1.0', "loop ends: empty"),
        ('error op=connect errno=ECONNREFUSED msg="Connection refused" t=1.0',
         "connect() failed: ECONNREFUSED Connection refused"),
        ('weird thing=1 t=1.5', "weird thing=1"),
        ('weird thing=1', "weird thing=1"),
    ],
    ids=["listening", "accepted", "connected", "sent", "sent-to", "sent-size", "recv", "recv-eof", "recvfrom",
         "closed", "stop", "error", "unknown-timed", "unknown-untimed"],
)
def test_describe(line, expected):
    assert describe(parse_line(line), 3) == expected


def test_event_text_drops_only_the_time():
    assert event_text(parse_line('recv n=3 data="a t=b" t=12.5')) == 'recv n=3 data="a t=b"'


def test_side_by_side_puts_events_in_time_order_in_their_column():
    run = tcp_run(tcp_server("hel", "lo,", "wor", "ld"))

    out = text_of(side_by_side(run, "192.168.33.6", "192.168.33.5"))
    lines = out.splitlines()

    assert lines[0].strip() == "TCP: 'hello,world', receive size 3"
    header = next(ln for ln in lines if "client 192.168.33.6" in ln)
    assert header.index("client 192.168.33.6") < header.index("server 192.168.33.5")
    rows = [ln for ln in lines if ln.startswith("│") and "ms" not in ln and "client" not in ln]
    cells = [[c.strip() for c in row.strip("│").split("│")] for row in rows]
    assert cells == [
        ["0.0", "", "bind + listen: waiting on 0.0.0.0:6666"],
        ["10.0", "connect() -> 192.168.33.5:6666 (from 192.168.33.6:40000)", ""],
        ["10.5", "", "accept() -> connection from 192.168.33.6:40000"],
        ["11.0", 'sendall("hello,world") (11 bytes)', ""],
        ["12.0", "close()", ""],
        ["20.0", "", 'recv(3) -> "hel"'],
        ["21.0", "", 'recv(3) -> "lo,"'],
        ["22.0", "", 'recv(3) -> "wor"'],
        ["23.0", "", 'recv(3) -> "ld"'],
        ["30.0", "", 'recv(3) -> "" (peer closed)'],
        ["31.0", "", "close()"],
    ]


def test_side_by_side_of_udp_shows_a_bind_without_listen_and_when_each_call_returned():
    server = events(
        'listening addr=0.0.0.0:6666 t=200.000',
        'recvfrom n=3 data="hel" peer=192.168.33.6:50000 t=200.0005',  # before sendto returned
        'recvfrom n=0 data="" peer=192.168.33.6:50000 t=200.0025',
    )
    run = PairRun(Options(proto="udp"), server_events=server, client_events=UDP_CLIENT)

    out = text_of(side_by_side(run, "192.168.33.6", "192.168.33.5"))
    rows = [[c.strip() for c in ln.strip("│").split("│")] for ln in out.splitlines()
            if ln.startswith("│") and "client" not in ln]

    assert rows[:3] == [
        ["0.0", "", "bind: waiting on 0.0.0.0:6666 (no listen in UDP)"],
        ["0.5", "", 'recvfrom(3) -> "hel" from 192.168.33.6:50000'],
        ["1.0", 'sendto("hello,world", 192.168.33.5:6666) -> 11', ""],
    ]
    assert "ms: when each call had returned, from the first row" in out
    assert "listen:" not in out


def test_side_by_side_of_no_events_is_an_empty_table():
    table = side_by_side(PairRun(Options(proto="udp")), "10.0.0.6", "10.0.0.5")

    assert table.row_count == 0
    assert [c.header for c in table.columns] == ["ms", "client 10.0.0.6", "server 10.0.0.5"]


def test_side_by_side_marks_errors_red():
    client = events('error op=connect errno=ECONNREFUSED msg="Connection refused" t=1.0')
    table = side_by_side(PairRun(Options(server=False), client_events=client, client_exit=1),
                         "c", "s")

    buf = StringIO()
    Console(file=buf, width=120, force_terminal=True, color_system="standard").print(table)

    assert "\x1b[31mconnect() failed: ECONNREFUSED Connection refused" in buf.getvalue()


# -- programs.py: argv builders and Options -----------------------------------------------
def test_server_argv_tcp():
    assert server_argv(Options(proto="tcp", bufsize=5), 6666) == [
        "python3", "/lab/programs/tcp_server.py", "--port", "6666", "--bufsize", "5"]


def test_server_argv_udp_has_a_timeout():
    assert server_argv(Options(proto="udp"), 7000) == [
        "python3", "/lab/programs/udp_server.py", "--port", "7000", "--bufsize", "3",
        "--timeout", "5"]


def test_client_argv_tcp():
    opts = Options(proto="tcp", message="hi there", count=2)

    assert client_argv(opts, "192.168.33.5", 6666) == [
        "python3", "/lab/programs/tcp_client.py", "--host", "192.168.33.5", "--port", "6666",
        "--message", "hi there", "--count", "2"]


def test_client_argv_udp_ends_with_an_empty_datagram():
    assert client_argv(Options(proto="udp"), "10.0.0.5", 6666) == [
        "python3", "/lab/programs/udp_client.py", "--host", "10.0.0.5", "--port", "6666",
        "--message", "hello,world", "--count", "1", "--end-with-empty"]


def test_options_defaults_are_the_posts():
    assert Options() == Options(proto="tcp", message="hello,world", bufsize=3, count=1,
                                port=None, server=True)


@pytest.mark.parametrize(
    ("kwargs", "message", "hint"),
    [
        ({"proto": "icmp"}, "unknown protocol 'icmp'", "use tcp or udp"),
        ({"bufsize": 0}, "receive size 0 is too small", "use 1 or more"),
        ({"bufsize": -4}, "receive size -4 is too small", "use 1 or more"),
        ({"count": 0}, "count 0 is too small", "use 1 or more"),
    ],
    ids=["proto", "bufsize-zero", "bufsize-negative", "count-zero"],
)
def test_options_validation(kwargs, message, hint):
    with pytest.raises(ConfigError) as info:
        Options(**kwargs)

    assert (str(info.value), info.value.hint) == (message, hint)


@pytest.mark.parametrize(
    ("client_exit", "server_exit", "ok"),
    [(0, 0, True), (0, None, True), (1, 0, False), (0, 1, False)],
    ids=["both-ok", "no-server", "client-failed", "server-failed"],
)
def test_pair_run_ok(client_exit, server_exit, ok):
    assert PairRun(Options(), server_exit=server_exit, client_exit=client_exit).ok is ok


def test_pair_run_error_is_the_clients_first():
    client = events('error op=connect errno=ETIMEDOUT msg="timed out" t=2.0')
    server = events('error op=accept errno=EINVAL msg="x" t=1.0')

    err = PairRun(Options(), server_events=server, client_events=client).error()

    assert err is not None
    assert err.fields["errno"] == "ETIMEDOUT"
