"""A hands-on lab for real: `socketlab shell` under a pseudo-terminal, `exec` streaming as the
command prints, Ctrl-C ending the command in the host too, the tools students reach for,
packets crafted with scapy in a host (and read back as scapy packets from a capture), and
`socketlab ls` / `status --json` seeing the lab. Output is awaited, never timed."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

pytestmark = pytest.mark.integration

PROMPT = b"client:/# "


def socketlab(lab, *argv: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "socketlab", "-p", lab.config.project, *argv],
                            **popen)


class Terminal:
    """A pseudo-terminal of 30 rows and 100 columns with `socketlab ...` running in it."""

    def __init__(self, lab, *argv: str) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        self.before = termios.tcgetattr(slave)
        self.slave = slave
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        self.proc = socketlab(lab, *argv, stdin=slave, stdout=slave, stderr=slave, env=env)
        self.seen = b""

    def read_until(self, marker: bytes, timeout: float = 60) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.seen and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:  # the other side has closed
                    break
        assert marker in self.seen, self.seen.decode(errors="replace")[-2000:]
        return self.seen

    def drain(self) -> bytes:
        """Everything written so far, once the command has ended (its output is all here)."""
        assert self.proc.poll() is not None
        while select.select([self.master], [], [], 0.2)[0]:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                break
            if not data:
                break
            self.seen += data
        return self.seen

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminal(lab):
    made = []

    def start(*argv: str) -> Terminal:
        made.append(Terminal(lab, *argv))
        return made[-1]

    yield start
    for t in made:
        t.close()


def test_shell_is_a_real_terminal_of_the_windows_size(lab, terminal):
    term = terminal("shell", "client")
    term.read_until(PROMPT)
    term.type("echo $((6*7)); stty size; tty; echo done-$((1+1))\r")
    seen = term.read_until(b"done-2").decode(errors="replace")
    assert "42" in seen
    assert "30 100" in seen  # the host's terminal took the window's size
    assert "/dev/pts/" in seen
    term.type("exit 5\r")
    assert term.proc.wait(30) == 5  # the shell's own exit code
    assert termios.tcgetattr(term.slave) == term.before  # raw mode undone on the way out


def test_exec_it_runs_a_program_that_wants_a_terminal(lab, terminal):
    term = terminal("exec", "-it", "client", "sh", "-c", 'stty size; read -r line; echo "read:$line"')
    term.read_until(b"30 100")
    term.type("abc\r")
    term.read_until(b"read:abc")
    assert term.proc.wait(30) == 0


@pytest.mark.parametrize("argv", [("shell", "client"), ("exec", "-it", "client", "bash")])
def test_input_that_ends_right_after_exit_is_no_error(lab, terminal, argv):
    """`exit`, then at once one more key (a pty's Ctrl-D when its input ends): the key may
    reach a stream whose command has just ended. Repeated, with the key a little later each
    time, to cross the moment the shell ends."""
    for gap in (0.0, 0.01, 0.02, 0.03, 0.05, 0.08):
        term = terminal(*argv)
        term.read_until(b"# ")  # the prompt: the shell reads its input
        term.type("exit\r")
        time.sleep(gap)  # not a wait for anything: where the last key falls
        term.type("\x04")
        code = term.proc.wait(30)
        seen = term.drain().decode(errors="replace")
        assert "Errno" not in seen, f"key {gap} s after exit: {seen}"
        assert "Traceback" not in seen, seen
        assert code == 0, seen


@pytest.mark.parametrize("argv", [("shell", "client"), ("exec", "-it", "client", "bash")])
def test_keys_typed_before_the_shell_is_up_reach_it(lab, terminal, argv):
    """Typed at once, while socketlab still starts (as `printf 'exit\\n' | script -c ...`
    types): kept, not flushed when the terminal goes raw, so the shell runs them and ends."""
    for _ in range(3):
        term = terminal(*argv)
        term.type("echo typed-$((40+2)); exit 3\r")  # no wait for a prompt
        term.read_until(b"typed-42", timeout=30)
        assert term.proc.wait(30) == 3


def test_exec_streams_output_as_the_command_prints_it(lab):
    """The first line arrives while the command is still waiting for its input: streamed."""
    proc = socketlab(lab, "exec", "-i", "client", "sh", "-c", 'echo first; read -r x; echo "got $x"',
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()
        if first != b"first\n":  # say why: the command's own error, if it ended
            proc.kill()
            pytest.fail(f"first line {first!r}; stderr: {proc.stderr.read().decode(errors='replace')}")
        proc.stdin.write(b"second\n")
        proc.stdin.close()
        assert proc.stdout.read() == b"got second\n"
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait(10)


def test_exec_passes_the_exit_code_and_stderr_on(lab):
    done = subprocess.run([sys.executable, "-m", "socketlab", "-p", lab.config.project, "exec",
                           "server", "sh", "-c", "echo out; echo err >&2; exit 3"],
                          capture_output=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (3, b"out\n", b"err\n")


def test_ctrl_c_ends_the_command_in_the_host_too(lab):
    proc = socketlab(lab, "exec", "client", "sleep", "271", stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, preexec_fn=_ctrl_c_as_at_a_terminal)
    try:
        deadline = time.monotonic() + 60
        while "sleep 271" not in _processes(lab) and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the host for the command to be there
        assert "sleep 271" in _processes(lab)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        proc.kill()
        proc.wait(10)
    assert "sleep 271" not in _processes(lab)


def _ctrl_c_as_at_a_terminal() -> None:
    """SIGINT as a terminal delivers it: a suite started in the background (`./scripts/test &`)
    hands its children SIGINT ignored, which Python then keeps ignored, as it should."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _processes(lab) -> str:
    return lab.exec("client", ["ps", "-eo", "args"], timeout=10).stdout


def test_the_tools_students_reach_for(lab):
    server = lab.config.server_ip
    ping = lab.exec("client", ["ping", "-c", "1", "-W", "5", server], timeout=15)
    assert ping.exit_code == 0, ping.stdout + ping.stderr
    assert "1 received" in ping.stdout
    trace = lab.exec("client", ["tracepath", "-n", "-m", "2", server], timeout=20)
    assert server in trace.stdout, trace.stdout + trace.stderr
    assert lab.exec("client", ["traceroute", "--version"], timeout=10).exit_code == 0
    iperf = lab.start("server", ["iperf3", "-s", "-1", "-p", "5201"], timeout=30)
    try:
        _wait_listening(lab, 5201)
        client = lab.exec("client", ["iperf3", "-c", server, "-p", "5201", "-t", "1", "-J"], timeout=20)
        assert client.exit_code == 0, client.stderr
        assert json.loads(client.stdout)["end"]["sum_received"]["bytes"] > 0
    finally:
        iperf.wait(25)
    nc = lab.start("server", ["nc", "-l", "7001"], timeout=20)
    try:
        _wait_listening(lab, 7001)
        sent = lab.exec("client", ["sh", "-c", f"echo hi | nc -N -w 5 {server} 7001"], timeout=20)
        assert sent.exit_code == 0, sent.stderr
        assert nc.wait_for(lambda line: line == "hi", 10) == "hi"
    finally:
        nc.wait(25)


def _wait_listening(lab, port: int) -> None:
    deadline = time.monotonic() + 20
    while f":{port} " not in lab.exec("server", ["ss", "-ltn"], timeout=10).stdout:
        assert time.monotonic() < deadline, f"nothing listened on {port}"
        time.sleep(0.1)  # polling the host for the listening socket


def test_ls_and_status_json_see_the_lab(lab):
    listed = subprocess.run([sys.executable, "-m", "socketlab", "ls", "--json"], capture_output=True,
                            check=True, timeout=60)
    mine = next(entry for entry in json.loads(listed.stdout) if entry["project"] == lab.config.project)
    assert mine["state"] == "running"
    assert mine["subnets"] == [lab.config.subnet]
    assert {(h["name"], h["address"]) for h in mine["hosts"]} == {
        ("server", lab.config.server_ip), ("client", lab.config.client_ip)}
    status = subprocess.run([sys.executable, "-m", "socketlab", "status", "-p", lab.config.project,
                             "--json"], capture_output=True, check=True, timeout=60)
    assert json.loads(status.stdout)["running"] is True
    assert mine["shaping"]["client"] == {"egress": None, "ingress": None}


def test_ls_and_shape_show_json_see_a_shaping(lab):
    from socketlab.act.shaping import clear, shape

    shape(lab, "client", "delay 20ms", "egress")
    try:
        listed = subprocess.run([sys.executable, "-m", "socketlab", "ls", "--json"], capture_output=True,
                                check=True, timeout=60)
        mine = next(e for e in json.loads(listed.stdout) if e["project"] == lab.config.project)
        assert mine["shaping"]["client"]["egress"]["spec"] == "delay 20ms"
        assert mine["shaping"]["server"] == {"egress": None, "ingress": None}
        shown = subprocess.run([sys.executable, "-m", "socketlab", "-p", lab.config.project, "shape",
                                "client", "--show", "--json"], capture_output=True, check=True, timeout=60)
        assert json.loads(shown.stdout)["egress"]["spec"] == "delay 20ms"
    finally:
        clear(lab, "client")


def test_a_lone_syn_is_refused_with_a_reset_or_answered_by_a_listener(lab):
    from socketlab.act.craft import Craft, craft

    port = 7100
    refused = craft(lab, "client", Craft("tcp", flags="S", dport=port, answer=2))
    assert len(refused.sent) == 1
    assert [a.rsplit(" ", 1)[-1] for a in refused.answers] == ["RA"]  # nobody listens: a reset
    listener = lab.start("server", ["python3", "/lab/programs/tcp_server.py", "--port", str(port),
                                    "--accept-timeout", "5"], timeout=15)
    try:
        listener.wait_for(lambda line: line.startswith("listening"), 10)
        answered = craft(lab, "client", Craft("tcp", flags="S", dport=port, answer=2))
        assert [a.rsplit(" ", 1)[-1] for a in answered.answers] == ["SA"]  # the kernel answers
    finally:
        listener.signal("TERM")  # accept() would wait: the client's kernel reset the half-open one
        listener.wait(20)


def test_a_df_datagram_arrives_with_df_set_as_scapy_reads_the_capture(lab, tmp_path):
    from scapy.layers.inet import IP, UDP

    from socketlab.act.craft import Craft, craft
    from socketlab.observe.capture import Capture

    with Capture(lab, ["server"], tmp_path, name="craft", bpf="udp port 7200") as capture:
        craft(lab, "client", Craft("udp", dport=7200, df=True, size=1400, payload="hello"))
    (packet,) = [p for p in capture.result["server"].scapy() if UDP in p]
    assert (packet[IP].src, packet[IP].dst) == (lab.config.client_ip, lab.config.server_ip)
    assert str(packet[IP].flags) == "DF"
    assert packet[IP].len == 1400
    assert bytes(packet[UDP].payload).startswith(b"hello")


def test_a_packet_for_outside_the_lab_is_refused_and_nothing_leaves(lab):
    from socketlab.act.craft import Craft, craft
    from socketlab.errors import ConfigError

    def sent() -> int:
        return int(lab.exec("client", ["cat", "/sys/class/net/eth0/statistics/tx_packets"],
                            timeout=10).stdout)

    before = sent()
    gateway = lab.config.subnet.split("/")[0].rsplit(".", 1)[0] + ".1"
    with pytest.raises(ConfigError, match="not a host of this lab"):
        craft(lab, "client", Craft(scapy=f"IP(dst='{gateway}')/UDP(dport=9)"))
    with pytest.raises(ConfigError, match="not a host of this lab"):
        craft(lab, "client", Craft("icmp", to=gateway))
    assert sent() == before
