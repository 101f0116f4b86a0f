"""Your own programs in the lab image: a mounted folder, Lab.put/get and `socketlab cp`, and
`run --server-cmd/--client-cmd` with programs that print nothing (ready by their port; the
ladder then has the packets alone)."""

from __future__ import annotations

import io

import pytest

from socketlab.cli.app import main
from socketlab.lab.lab import Lab
from tests.conftest import lab_config

pytestmark = pytest.mark.integration
SILENT_SERVER = """\
import socket, sys
with socket.create_server(("", int(sys.argv[1]))) as s:
    conn, _ = s.accept()
    with conn:
        while conn.recv(65536):
            pass
"""
SILENT_CLIENT = """\
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as c:
    c.sendall(b"x" * 1000)
"""


@pytest.fixture(scope="module")
def prog_lab(docker_client, lab_image, tmp_path_factory):
    mounted = tmp_path_factory.mktemp("mounted")
    (mounted / "hello.txt").write_text("from the mount\n")
    with Lab(lab_config("-own-programs", mounts=(f"{mounted}:/mnt/here",)),
             client=docker_client) as lab:
        yield lab


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_a_mounted_folder_is_in_every_lab_host_read_only(prog_lab):
    for host in prog_lab.topology.names:
        assert prog_lab.exec(host, ["cat", "/mnt/here/hello.txt"]).stdout == "from the mount\n"
        assert prog_lab.exec(host, ["touch", "/mnt/here/new"]).exit_code != 0


def test_put_copies_a_file_and_a_folder_and_get_brings_a_file_back(prog_lab, tmp_path):
    tree = tmp_path / "prog"
    (tree / "lib").mkdir(parents=True)
    (tree / "main.py").write_text("print('main')\n")
    (tree / "lib" / "util.py").write_text("X = 1\n")
    prog_lab.put("client", tree, "/work/prog")
    found = prog_lab.exec("client", ["find", "/work/prog", "-type", "f"]).stdout.split()
    assert sorted(found) == ["/work/prog/lib/util.py", "/work/prog/main.py"]
    assert prog_lab.exec("client", ["python3", "/work/prog/main.py"]).stdout == "main\n"
    prog_lab.get("client", "/work/prog/lib/util.py", tmp_path / "back.py")
    assert (tmp_path / "back.py").read_text() == "X = 1\n"


def test_cp_copies_in_and_out_and_names_the_hosts_when_no_side_is_a_host(prog_lab, tmp_path):
    src = tmp_path / "note.txt"
    src.write_text("a note\n")
    project = prog_lab.config.project
    code, out, err = cli("-p", project, "cp", str(src), "server:/work/notes/note.txt")
    assert (code, err) == (0, ""), out
    assert prog_lab.exec("server", ["cat", "/work/notes/note.txt"]).stdout == "a note\n"
    code, out, err = cli("-p", project, "cp", "server:/work/notes/note.txt", str(tmp_path / "out"))
    assert code == 0, err
    assert (tmp_path / "out").read_text() == "a note\n"
    code, _out, err = cli("-p", project, "cp", str(src), str(tmp_path / "x"))
    assert code == 64  # a usage error: nothing was copied
    assert err.splitlines()[0] == "error: give one side as HOST:PATH and the other as a path here"


def test_run_your_own_silent_server_and_client_with_a_capture(prog_lab, tmp_path):
    for name, text, host in (("srv.py", SILENT_SERVER, "server"), ("cli.py", SILENT_CLIENT, "client")):
        (tmp_path / name).write_text(text)
        prog_lab.put(host, tmp_path / name, f"/work/{name}")
    server_ip = prog_lab.topology.ip("server")
    code, out, err = cli("-p", prog_lab.config.project, "run", "tcp", "--port", "7000",
                         "--server-cmd", "python3 /work/srv.py 7000",
                         "--client-cmd", f"python3 /work/cli.py {server_ip} 7000",
                         "--capture", str(tmp_path / "runs"))
    assert code == 0, out + err
    assert f"server ({server_ip}) exited 0" in out
    drawn = next((tmp_path / "runs").rglob("tcp-ladder.txt")).read_text()
    assert "SYN" in drawn
    assert "len=1000" in drawn  # the packets, though the programs printed no event


def test_a_server_command_that_never_opens_its_port_is_a_clear_failure(prog_lab):
    code, _out, err = cli("-p", prog_lab.config.project, "run", "tcp", "--port", "7001",
                          "--server-cmd", "python3 -c 'import sys; sys.exit(3)'",
                          "--client-cmd", "true")
    assert code == 2
    assert err.startswith("error: the tcp server did not start")


def test_a_server_command_naming_a_missing_file_is_not_blamed_on_the_port(prog_lab):
    code, out, err = cli("-p", prog_lab.config.project, "run", "tcp", "--port", "7002",
                         "--server-cmd", "python3 /work/no-such-server.py", "--client-cmd", "true")

    assert (code, out) == (2, "")
    error, hint = err.strip().splitlines()
    assert error.startswith("error: the tcp server did not start: ")
    assert "No such file or directory" in error
    assert hint == ("hint: the server ended (exit code 2) before opening port 7002/tcp: its "
                    "message above says why; try the command by hand with "
                    "`socketlab exec server CMD`")
    assert "holds" not in hint
