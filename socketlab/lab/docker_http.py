"""The Docker Engine API over its socket, with the standard library only: the fast path.

Finding a lab's containers and running commands in them (exec) is most of what a command on a
running lab does; the Docker SDK costs about 0.1-0.3 s to import (through `requests`), more
than an exec itself. This client speaks the same Engine API over a plain socket, one HTTP/1.1
request per connection (`Connection: close`: a body ends with its length, its last chunk, or the
connection; `http.client` would add its e-mail parser to every command's start-up), and answers
in the Engine API's own JSON (the SDK's `APIClient` gives the same dicts). Everything else
(build, compose's lifecycle, networks) stays with the SDK.

    engine = DockerHTTP.from_env()           # DOCKER_HOST: unix://, tcp:// (TLS as the SDK)
    exec_id = engine.exec_create(cid, ["ss", "-tan"])
    with engine.exec_attach(exec_id) as stream:
        for out, err in stream.chunks(): ...
    engine.exec_inspect(exec_id)["ExitCode"]
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

from socketlab.errors import DockerUnavailable, LabError, LabNotRunning
from socketlab.lab.process import RunningExec, launch_argv

if TYPE_CHECKING:
    import ssl

DEFAULT_SOCKET = "/var/run/docker.sock"
TIMEOUT_S = 120.0
STDOUT, STDERR = 1, 2
Filters = Mapping[str, "Sequence[str] | str"]


class EngineError(LabError):
    """The engine answered with an error (its own message, one line)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, hint="see `docker info`; run again with --debug for details")
        self.status = status


class Response:
    """An answer's status and headers; its body read from `reader` (the connection's)."""

    def __init__(self, sock: socket.socket, reader) -> None:
        self.sock, self.reader = sock, reader
        line = reader.readline(65537)
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise OSError(f"not an HTTP answer: {line[:80]!r}")
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        while (header := reader.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def read(self) -> bytes:
        """The whole body: by its length, by chunks, or to the connection's end."""
        if self.status in (101, 204, 304):
            return b""
        if "content-length" in self.headers:
            return self.reader.read(int(self.headers["content-length"]))
        if "chunked" in self.headers.get("transfer-encoding", ""):
            body = bytearray()
            while (size := int(self.reader.readline().split(b";")[0], 16)) > 0:
                body += self.reader.read(size)
                self.reader.readline()  # the CRLF after each chunk
            return bytes(body)
        return self.reader.read()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class EngineAPI(Protocol):
    """The Engine API requests the compose engine makes: DockerHTTP (one engine), and the
    swarm engine's NodesHTTP (each request sent to the node that holds the container)."""

    def containers(self, *, all: bool = False, filters: Filters | None = None) -> list[dict]: ...

    def networks(self, *, filters: Filters | None = None) -> list[dict]: ...

    def inspect_container(self, container: str) -> dict: ...

    def read_file(self, container: str, path: str) -> bytes | None: ...

    def exec_run(self, container: str, cmd: Sequence[str], *, user: str = ""
                 ) -> tuple[int, bytes, bytes]: ...

    def exec_create(self, container: str, cmd: Sequence[str], *, stdin: bool = False,
                    tty: bool = False, user: str = "", environment: Sequence[str] = ()) -> str: ...

    def exec_attach(self, exec_id: str, *, tty: bool = False) -> ExecStream: ...

    def start_exec(self, container: str, argv: Sequence[str], *, timeout: float, gated: bool = False,
                   kill: Callable[[str, str], bool] | None = None) -> RunningExec: ...


class DockerHTTP:
    """One engine, reached through its socket; a new connection per request (cheap on a unix
    socket, and exec's attached streams take their connection over anyway)."""

    def __init__(self, address: str = f"unix://{DEFAULT_SOCKET}", *,
                 tls: ssl.SSLContext | None = None, timeout: float = TIMEOUT_S) -> None:
        url = urlsplit(address)
        if url.scheme in ("unix", "http+unix") or (url.scheme == "" and address.startswith("/")):
            self._unix: str | None = url.path or address
        elif url.scheme in ("tcp", "http", "https"):
            self._unix = None
            self._hostport = (url.hostname or "localhost", url.port or (2376 if tls else 2375))
        else:
            raise DockerUnavailable(
                f"socketlab cannot reach an engine at {address!r} (it speaks unix:// and tcp://)",
                hint="forward the engine's socket, e.g. `ssh -nNT -L /tmp/d.sock:/var/run/docker.sock "
                     "HOST` and DOCKER_HOST=unix:///tmp/d.sock")
        self.address, self._tls, self.timeout = address, tls, timeout

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DockerHTTP:
        """The engine DOCKER_HOST names (TLS with DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, as the
        SDK and the docker CLI read them); the local socket by default."""
        env = os.environ if environ is None else environ
        address = env.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
        tls, verify, certs = None, bool(env.get("DOCKER_TLS_VERIFY")), env.get("DOCKER_CERT_PATH")
        if verify or certs:  # as the SDK reads them: either one turns TLS on
            import ssl  # here: only a TLS engine pays for it

            certs = certs or os.path.expanduser("~/.docker")
            tls = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem") if verify else None)
            tls.check_hostname = False  # as the SDK: the engine's certificate names no host
            if not verify:
                tls.verify_mode = ssl.CERT_NONE
            tls.load_cert_chain(os.path.join(certs, "cert.pem"), os.path.join(certs, "key.pem"))
        return cls(address, tls=tls)

    # -- plumbing -----------------------------------------------------------------------------
    def _connect(self) -> socket.socket:
        if self._unix is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self._unix)
            except OSError:
                sock.close()
                raise
            return sock
        sock = socket.create_connection(self._hostport, timeout=self.timeout)
        if self._tls is not None:
            return self._tls.wrap_socket(sock, server_hostname=self._hostport[0])
        return sock

    def _send(self, method: str, path: str, body: object = None,
              headers: Mapping[str, str] | None = None) -> Response:
        """One request on a connection of its own; the answer's status and headers read."""
        data = b"" if body is None else json.dumps(body).encode()
        hdrs = {"Host": "docker", "Connection": "close", "Content-Type": "application/json",
                "Content-Length": str(len(data)), **(headers or {})}
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        sock = None
        try:
            sock = self._connect()
            sock.sendall(head.encode("latin-1") + b"\r\n" + data)
            return Response(sock, sock.makefile("rb"))
        except OSError as e:
            if sock is not None:
                sock.close()
            raise unavailable(e, self.address) from None

    def request(self, method: str, path: str, body: object = None,
                query: Mapping[str, Any] | None = None) -> Any:
        """One request; its JSON answer (None when empty). An engine error raises EngineError,
        or LabNotRunning for a container that is gone or stopped."""
        if query:
            path += "?" + urlencode({k: v if isinstance(v, str) else json.dumps(v)
                                     for k, v in query.items()})
        resp = self._send(method, path, body)
        try:
            raw = resp.read()
        finally:
            resp.close()
        answer = json.loads(raw) if raw.strip() else None
        if resp.status >= 400:
            message = answer.get("message", "") if isinstance(answer, dict) else raw.decode()
            if resp.status in (404, 409) and "container" in message.lower():
                raise LabNotRunning(message)
            raise EngineError(resp.status, f"the Docker engine refused {method} {path}: {message}")
        return answer

    # -- the Engine API, as the SDK's APIClient names it ---------------------------------------
    def ping(self) -> None:
        resp = self._send("GET", "/_ping")
        resp.read()
        resp.close()

    def containers(self, *, all: bool = False, filters: Filters | None = None) -> list[dict]:
        return self.request("GET", "/containers/json",
                            query={"all": "1" if all else "0", "filters": _filters(filters)})

    def networks(self, *, filters: Filters | None = None) -> list[dict]:
        return self.request("GET", "/networks", query={"filters": _filters(filters)})

    def inspect_container(self, container: str) -> dict:
        return self.request("GET", f"/containers/{quote(container)}/json")

    def inspect_network(self, network: str) -> dict:
        return self.request("GET", f"/networks/{quote(network)}")

    def version(self) -> dict:
        return self.request("GET", "/version")

    def read_file(self, container: str, path: str) -> bytes | None:
        """A file's content, copied out of a container (no process started in it); None if
        the container has no such file."""
        import io
        import tarfile

        resp = self._send("GET", f"/containers/{quote(container)}/archive?" +
                          urlencode({"path": path}))
        try:
            raw = resp.read()
        finally:
            resp.close()
        if resp.status == 404:
            return None
        if resp.status >= 400:
            raise EngineError(resp.status, f"the Docker engine could not copy {path}: "
                                           f"{raw.decode(errors='replace').strip()}")
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = next(iter(tar), None)
            data = tar.extractfile(member) if member is not None else None
            return data.read() if data is not None else None

    def exec_create(self, container: str, cmd: Sequence[str], *, stdin: bool = False,
                    tty: bool = False, user: str = "", environment: Sequence[str] = ()) -> str:
        body = {"Cmd": list(cmd), "AttachStdin": stdin, "AttachStdout": True, "AttachStderr": True,
                "Tty": tty, "User": user, "Env": list(environment)}
        return self.request("POST", f"/containers/{quote(container)}/exec", body)["Id"]

    def exec_attach(self, exec_id: str, *, tty: bool = False) -> ExecStream:
        """Start an exec and take its connection over: its output, and its stdin if it has one."""
        resp = self._send("POST", f"/exec/{exec_id}/start", {"Detach": False, "Tty": tty},
                          {"Connection": "Upgrade", "Upgrade": "tcp"})
        if resp.status not in (101, 200):
            message = resp.read().decode(errors="replace").strip()
            resp.close()
            raise EngineError(resp.status, f"the Docker engine could not start a command: {message}")
        return ExecStream(resp, tty, engine=self, exec_id=exec_id)

    def exec_inspect(self, exec_id: str) -> dict:
        return self.request("GET", f"/exec/{exec_id}/json")

    def exec_resize(self, exec_id: str, rows: int, cols: int) -> None:
        self.request("POST", f"/exec/{exec_id}/resize", query={"h": str(rows), "w": str(cols)})

    def exec_run(self, container: str, cmd: Sequence[str], *, user: str = ""
                 ) -> tuple[int, bytes, bytes]:
        """Run a command to its end: (exit code, stdout, stderr)."""
        exec_id = self.exec_create(container, cmd, user=user)
        out: list[bytes] = []
        err: list[bytes] = []
        with self.exec_attach(exec_id) as stream:
            for o, e in stream.chunks():
                if o is not None:
                    out.append(o)
                elif e is not None:
                    err.append(e)
        return self.exec_inspect(exec_id)["ExitCode"], b"".join(out), b"".join(err)

    def start_exec(self, container: str, argv: Sequence[str], *, timeout: float, gated: bool = False,
                   kill: Callable[[str, str], bool] | None = None) -> RunningExec:
        """A command left running in a container, bounded by `timeout` there, read as it runs.
        Its launcher prints the command's pid first; gated, it then waits for RunningExec.release()
        (so the exec's start-up is paid before it matters). kill(pid, signal): see RunningExec."""
        exec_id = self.exec_create(container, launch_argv(argv, timeout, gated), stdin=gated)
        stream = self.exec_attach(exec_id)
        return RunningExec(stream.chunks(), lambda: self.exec_inspect(exec_id)["ExitCode"], kill,
                           stream if gated else None)


class ExecStream:
    """A started exec's connection: read its output as it comes, write to its stdin; its
    terminal's size (tty) and, once it has ended, its exit code."""

    def __init__(self, resp: Response, tty: bool, *,
                 engine: DockerHTTP | None = None, exec_id: str = "") -> None:
        self._resp, self._reader, self.tty = resp, resp.reader, tty
        self._engine, self.exec_id = engine, exec_id
        self.ended = False  # the command's output has ended and the connection is closed

    @property
    def socket(self) -> socket.socket:
        return self._resp.sock

    def sendall(self, data: bytes) -> None:
        """Input for the command; once it has ended (a key typed just after `exit`), there is
        nobody to read it, and it is dropped, as a terminal drops keys after its shell exits."""
        with self._unless_ended():
            self._resp.sock.sendall(data)

    def close_stdin(self) -> None:
        """End of input for the command (the connection stays open for its output)."""
        with self._unless_ended():
            self._resp.sock.shutdown(socket.SHUT_WR)

    @contextlib.contextmanager
    def _unless_ended(self) -> Iterator[None]:
        """A write that races the command's end (the reader closes the connection at the end
        of its output; the engine closes its side when the command exits) is no error."""
        try:
            yield
        except OSError as e:
            ended = self.ended or isinstance(e, (BrokenPipeError, ConnectionResetError)) or \
                e.errno == errno.ENOTCONN
            if not ended:
                raise

    def resize(self, rows: int, cols: int) -> None:
        """Tell the command's terminal its size (as a terminal window does)."""
        if self._engine is not None:
            self._engine.exec_resize(self.exec_id, rows, cols)

    def exit_code(self) -> int | None:
        """The command's exit code once it has ended (None while it runs)."""
        if self._engine is None:
            return None
        return self._engine.exec_inspect(self.exec_id).get("ExitCode")

    def chunks(self) -> Iterator[tuple[bytes | None, bytes | None]]:
        """(stdout, None) or (None, stderr) chunks until the command's end (as the SDK's
        exec_start(stream=True, demux=True)); with a terminal, everything is stdout. The
        connection is closed at the end."""
        try:
            yield from self._chunks()
        finally:
            self.close()

    def _chunks(self) -> Iterator[tuple[bytes | None, bytes | None]]:
        while True:
            if self.tty:
                data = self._reader.read1(65536)
                if not data:
                    return
                yield data, None
                continue
            header = self._reader.read(8)
            if len(header) < 8:
                return
            data = self._reader.read(int.from_bytes(header[4:8], "big"))
            yield (data, None) if header[0] != STDERR else (None, data)

    def close(self) -> None:
        self.ended = True  # first: a write that fails from here on knows why
        self._resp.close()

    def __enter__(self) -> ExecStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _filters(filters: Filters | None) -> dict[str, list[str]]:
    """Filters as the engine reads them: each a list of values."""
    return {k: [v] if isinstance(v, str) else list(v) for k, v in (filters or {}).items()}


def unavailable(e: BaseException, address: str = "") -> DockerUnavailable:
    """Why the engine cannot be reached, in the user's words, with what to do."""
    text = f"{type(e).__name__}: {e}" if isinstance(e, OSError) else str(e)
    if isinstance(e, PermissionError) or "Permission denied" in text or "PermissionError" in text:
        return DockerUnavailable(
            "no permission to use the Docker engine's socket",
            hint="add yourself to the docker group (`sudo usermod -aG docker $USER`, then log in "
                 "again) or run as root",
        )
    if isinstance(e, (FileNotFoundError, ConnectionRefusedError)) or any(
            s in text for s in ("FileNotFoundError", "No such file", "Connection refused")):
        return DockerUnavailable("the Docker engine is not running (nothing answers on its socket)")
    where = f" at {address}" if address else ""
    return DockerUnavailable(f"cannot reach the Docker engine{where}: {text}")
