"""The Engine API client without the SDK, against a fake engine on a unix socket.

The fake answers as Docker's engine does (checked against a real one): JSON for look-ups, and
for an exec's start a hijacked connection carrying 8-byte-framed stdout/stderr chunks.
"""

from __future__ import annotations

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest

from socketlab.errors import DockerUnavailable, LabNotRunning
from socketlab.lab.docker_http import DockerHTTP, EngineError, unavailable


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


class FakeEngine(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, object]] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def _json(self, status: int, data: object) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.seen.append(("GET", url.path, parse_qs(url.query)))
        if url.path == "/containers/json":  # chunked, as the engine sends a longer answer
            raw = json.dumps([{"Id": "c1", "Labels": {}, "Names": ["/lab-server-1"]}]).encode()
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (raw[:10], raw[10:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/exec/e1/json":
            self._json(200, {"ExitCode": 3, "Running": False})
        elif url.path == "/containers/c1/archive":
            self._archive(parse_qs(url.query)["path"][0])
        elif url.path == "/containers/gone/json":
            self._json(404, {"message": "No such container: gone"})
        else:
            self._json(500, {"message": "server error"})

    def _archive(self, path: str) -> None:
        """GET /containers/ID/archive: the file as a tar stream, or 404."""
        import io
        import tarfile

        if not path.endswith("egress.json"):
            self._json(404, {"message": f"Could not find the file {path} in container c1"})
            return
        data, buf = b'{"spec": "loss 5%"}', io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(path.rsplit("/", 1)[-1])
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-tar")
        self.send_header("Content-Length", str(len(buf.getvalue())))
        self.end_headers()
        self.wfile.write(buf.getvalue())

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self._body()
        self.seen.append(("POST", url.path, body))
        if url.path == "/containers/c1/exec":
            self._json(201, {"Id": "e1"})
        elif url.path == "/containers/stopped/exec":
            self._json(409, {"message": "Container stopped is not running"})
        elif url.path == "/exec/e1/start":
            self.send_response(101)
            self.send_header("Content-Type", "application/vnd.docker.raw-stream")
            self.send_header("Connection", "Upgrade")
            self.send_header("Upgrade", "tcp")
            self.end_headers()
            self.wfile.write(frame(1, b"hello ") + frame(2, b"warning\n"))
            self.wfile.flush()
            stdin = self.rfile.readline() if FakeEngine.read_stdin else b""
            self.wfile.write(frame(1, b"world " + stdin))
            self.close_connection = True
        else:
            self._json(404, {"message": "page not found"})


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = self.socket.accept()
        return request, ("local", 0)  # http.server wants a (host, port) client address


@pytest.fixture
def engine(tmp_path):
    path = str(tmp_path / "docker.sock")
    FakeEngine.seen, FakeEngine.read_stdin = [], False
    server = Server(path, FakeEngine)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield DockerHTTP(f"unix://{path}")
    server.shutdown()
    server.server_close()


def test_containers_sends_filters_as_the_engine_reads_them(engine):
    found = engine.containers(filters={"label": ["a=b", "c=d"], "status": "running"})

    assert found[0]["Id"] == "c1"
    (method, path, query), = FakeEngine.seen
    assert (method, path, query["all"]) == ("GET", "/containers/json", ["0"])
    assert json.loads(query["filters"][0]) == {"label": ["a=b", "c=d"], "status": ["running"]}


def test_exec_run_demultiplexes_stdout_and_stderr_and_reads_the_exit_code(engine):
    code, out, err = engine.exec_run("c1", ["echo", "hi"], user="lab")

    assert (code, out, err) == (3, b"hello world ", b"warning\n")
    create = FakeEngine.seen[0]
    assert create[2]["Cmd"] == ["echo", "hi"]
    assert create[2]["User"] == "lab"
    assert create[2]["AttachStdin"] is False


def test_an_attached_exec_takes_stdin_and_streams_as_it_comes(engine):
    FakeEngine.read_stdin = True
    exec_id = engine.exec_create("c1", ["cat"], stdin=True)
    with engine.exec_attach(exec_id) as stream:
        chunks = stream.chunks()
        assert next(chunks) == (b"hello ", None)  # before any stdin: streamed, not at the end
        assert next(chunks) == (None, b"warning\n")
        stream.sendall(b"go\n")
        assert list(chunks) == [(b"world go\n", None)]


def test_input_after_the_command_ended_is_dropped_not_an_error(engine):
    """A key typed just after `exit` (a pty's Ctrl-D) reaches a stream whose command has
    ended and whose connection the reader has closed: no `[Errno 9] Bad file descriptor`."""
    exec_id = engine.exec_create("c1", ["echo", "hi"], stdin=True)
    with engine.exec_attach(exec_id) as stream:
        list(stream.chunks())  # the output's end: the connection is closed
        assert stream.ended

        stream.sendall(b"\x04")
        stream.close_stdin()


@pytest.mark.parametrize(("call", "error", "text"), [
    (lambda e: e.inspect_container("gone"), LabNotRunning, "No such container: gone"),
    (lambda e: e.exec_create("stopped", ["true"]), LabNotRunning, "is not running"),
    (lambda e: e.version(), EngineError, "refused GET /version: server error"),
])
def test_engine_errors_are_lab_errors_with_the_engines_message(engine, call, error, text):
    with pytest.raises(error, match=text):
        call(engine)


def test_no_engine_is_docker_unavailable(tmp_path):
    with pytest.raises(DockerUnavailable, match="not running"):
        DockerHTTP(f"unix://{tmp_path}/none.sock").ping()


@pytest.mark.parametrize(("error", "text"), [
    (PermissionError(13, "Permission denied"), "no permission to use the Docker engine's socket"),
    (FileNotFoundError(2, "No such file or directory"), "the Docker engine is not running"),
    (TimeoutError("timed out"), "cannot reach the Docker engine at tcp://h:1: TimeoutError"),
])
def test_why_the_engine_cannot_be_reached(error, text):
    assert str(unavailable(error, "tcp://h:1")).startswith(text)


@pytest.mark.parametrize(("env", "address"), [
    ({}, "unix:///var/run/docker.sock"),
    ({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, "unix:///run/user/1000/docker.sock"),
    ({"DOCKER_HOST": "tcp://10.0.0.9:2375"}, "tcp://10.0.0.9:2375"),
])
def test_from_env_reads_docker_host(env, address):
    assert DockerHTTP.from_env(env).address == address


def test_an_ssh_engine_is_refused_with_a_way_around():
    with pytest.raises(DockerUnavailable, match="unix:// and tcp://") as info:
        DockerHTTP.from_env({"DOCKER_HOST": "ssh://me@box"})
    assert "ssh -nNT -L" in info.value.hint


def test_read_file_copies_a_file_out_or_says_it_is_not_there(engine):
    assert engine.read_file("c1", "/run/socketlab/shape-egress.json") == b'{"spec": "loss 5%"}'
    assert engine.read_file("c1", "/run/socketlab/shape-ingress.json") is None
