"""The lab image, built from images/lab with no registry needed.

The Dockerfile's base defaults to debian:bookworm-slim (what a user with a registry gets).
When that base is neither local nor pullable, socketlab makes its own base from Debian's
archive with debootstrap (or mmdebstrap), with the lab's packages already inside, and
imports it as socketlab/base:bookworm. The lab image carries a hash of its build context
as a label, so an unchanged context is never rebuilt and a changed one always is.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from socketlab.errors import ConfigError, ImageError

DEFAULT_BASE = "debian:bookworm-slim"
OWN_BASE = "socketlab/base:bookworm"
CONTEXT_LABEL = "io.socketlab.context"
SUITE = "bookworm"
# Left out of the imported base: apt's caches and lists, manuals, translations (the
# packages' copyright files stay).
BASE_EXCLUDES = ("var/cache/apt/*", "var/lib/apt/lists/*", "usr/share/man/*",
                 "usr/share/locale/*", "usr/share/info/*", "proc/*", "sys/*", "dev/*")
MERGED_USR_HOOKS = Path("/usr/share/mmdebstrap/hooks/merged-usr")
BUILD_LOCK = Path(tempfile.gettempdir()) / "socketlab-build.lock"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageInfo:
    tag: str
    id: str
    size_bytes: int
    built: bool  # True when this call built it, False when it was already up to date
    seconds: float


def context_hash(context: Path) -> str:
    """sha256 over every file of the build context: path, executable bit and content."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(context)).encode() + b"\0")
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def packages(dockerfile: Path) -> list[str]:
    """The lab's Debian packages, read from the Dockerfile's install step (one source)."""
    match = re.search(r'^RUN packages="([^"]+)"', dockerfile.read_text(), re.MULTILINE)
    if not match:
        raise ImageError(f"no `RUN packages=` line in {dockerfile}", hint="restore the Dockerfile")
    return match.group(1).split()


def local_image(client: docker.DockerClient, tag: str):
    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def lab_image_status(client: docker.DockerClient, tag: str, context: Path) -> str:
    """'missing', 'stale' (built from another context) or 'current'."""
    image = local_image(client, tag)
    if image is None:
        return "missing"
    return "current" if image.labels.get(CONTEXT_LABEL) == context_hash(context) else "stale"


def ensure_lab_image(client: docker.DockerClient, tag: str, context: Path, progress: Progress,
                     *, base: str | None = None, force: bool = False, nocache: bool = False
                     ) -> ImageInfo:
    """Build the lab image unless an image from the same context is already there; its base
    is found or made (ensure_base) only when a build is needed."""
    def buildargs() -> dict[str, str]:
        return {"BASE": ensure_base(client, base or os.environ.get("SOCKETLAB_BASE") or DEFAULT_BASE,
                                    packages(context / "Dockerfile"), progress)}
    return ensure_image(client, tag, context, progress, buildargs=buildargs, force=force,
                        nocache=nocache)


def ensure_image(client: docker.DockerClient, tag: str, context: Path, progress: Progress, *,
                 buildargs: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
                 force: bool = False, nocache: bool = False) -> ImageInfo:
    """Any image built from a folder (the lab's, or your own service's), unless an image from
    the same context is already there. Builds on this machine take turns (a lock file):
    pytest-xdist workers or parallel CI jobs that all need an image build it once, and the
    others find it built."""
    start = time.monotonic()
    want = context_hash(context)
    with open(BUILD_LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        image = local_image(client, tag)
        if image is not None and image.labels.get(CONTEXT_LABEL) == want and not force:
            return ImageInfo(tag, image.id, image.attrs.get("Size", 0), False,
                             time.monotonic() - start)
        args = dict(buildargs() if callable(buildargs) else buildargs or {})
        on = f" on {args['BASE']}" if "BASE" in args else ""
        progress(f"building {tag} from {context}{on}")
        image = _build(client, tag, context, args, want, progress, nocache)
    return ImageInfo(tag, image.id, image.attrs.get("Size", 0), True, time.monotonic() - start)


def _build(client, tag, context, buildargs, label, progress, nocache):
    try:
        for chunk in client.api.build(path=str(context), tag=tag, buildargs=buildargs,
                                      labels={CONTEXT_LABEL: label}, rm=True, forcerm=True,
                                      pull=False, nocache=nocache, decode=True):
            if "error" in chunk:
                raise ImageError(f"building {tag} failed: {chunk['error'].strip()}",
                                 hint="run `./scripts/lab build --debug` for the whole log")
            line = chunk.get("stream", "").strip()
            if line.startswith("Step "):
                progress("  " + (line if len(line) < 90 else line[:87] + "..."))
    except docker.errors.APIError as e:
        raise ImageError(f"building {tag} failed: {e.explanation or e}") from None
    return client.images.get(tag)


def ensure_base(client: docker.DockerClient, base: str, pkgs: list[str], progress: Progress) -> str:
    """A base image that exists locally: `base` itself, pulled, or our own Debian base."""
    if local_image(client, base) is not None:
        return base
    if base != DEFAULT_BASE:  # a base the user chose: we only use it, we never replace it
        _pull_or_fail(client, base, progress)
        return base
    if local_image(client, OWN_BASE) is not None:
        return OWN_BASE
    try:
        progress(f"pulling {base}")
        client.images.pull(base)
        return base
    except docker.errors.APIError:
        progress(f"{base} cannot be pulled here: making {OWN_BASE} from Debian's archive "
                 "(about a minute, once)")
    make_debian_base(client, OWN_BASE, pkgs, progress)
    return OWN_BASE


def _pull_or_fail(client, base, progress):
    progress(f"pulling {base}")
    try:
        client.images.pull(base)
    except docker.errors.APIError as e:
        raise ImageError(f"base image {base} is not local and cannot be pulled: {e.explanation}",
                         hint=f"load it (`docker load`) or unset SOCKETLAB_BASE to use "
                              f"{DEFAULT_BASE}") from None


def make_debian_base(client: docker.DockerClient, tag: str, pkgs: list[str],
                     progress: Progress) -> None:
    """debootstrap (or mmdebstrap) a minimal bookworm with `pkgs` inside; import it as `tag`."""
    argv_for = _bootstrap_tool(progress)
    workdir = Path(tempfile.mkdtemp(prefix="socketlab-base-", dir="/var/tmp"))
    root = workdir / "root"
    try:
        _run_logged(argv_for(root, pkgs), progress)
        progress(f"importing {root} as {tag}")
        _import(client, root, tag)
    finally:
        unmount_below(root)
        shutil.rmtree(workdir, ignore_errors=True)


def _bootstrap_tool(progress: Progress) -> Callable[[Path, list[str]], list[str]]:
    """mmdebstrap where it is (about 35 s here), else debootstrap (about 60 s); as root with
    apt-get and neither installed, mmdebstrap is installed first."""
    if os.geteuid() != 0:
        raise ImageError(
            f"{DEFAULT_BASE} is not available and making a base from Debian's archive needs root",
            hint="run `sudo ./scripts/lab build` once, or `docker load` a debian:bookworm-slim",
        )
    if not (shutil.which("debootstrap") or shutil.which("mmdebstrap")) and shutil.which("apt-get"):
        progress("installing mmdebstrap (apt-get install mmdebstrap)")
        subprocess.run(["apt-get", "install", "-y", "-qq", "mmdebstrap"], check=False,
                       capture_output=True)
    mirror = [os.environ["SOCKETLAB_DEBIAN_MIRROR"]] if os.environ.get("SOCKETLAB_DEBIAN_MIRROR") else []
    if shutil.which("mmdebstrap"):
        return lambda root, pkgs: [*mmdebstrap_argv(pkgs), SUITE, str(root), *mirror]
    if shutil.which("debootstrap"):
        return lambda root, pkgs: ["debootstrap", "--variant=minbase", f"--include={','.join(pkgs)}",
                                   SUITE, str(root), *mirror]
    raise ImageError(f"{DEFAULT_BASE} is not available and neither mmdebstrap nor debootstrap "
                     "is installed", hint="install one (`apt-get install mmdebstrap`)")


def mmdebstrap_argv(pkgs: list[str], hooks: Path = MERGED_USR_HOOKS) -> list[str]:
    """mmdebstrap for a small base: no recommends, no docs but the copyright files, no
    manuals or translations, and /usr merged by its hook (else it would pull in usrmerge and
    with it all of perl)."""
    argv = ["mmdebstrap", "--variant=minbase", "--aptopt", 'APT::Install-Recommends "false"',
            "--dpkgopt=force-unsafe-io"]  # a throwaway root: no fsync for every file
    argv += [f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "locale", "info")]
    argv.append("--dpkgopt=path-include=/usr/share/doc/*/copyright")
    if hooks.is_dir():
        argv.append(f"--hook-dir={hooks}")
    return [*argv, f"--include={','.join(pkgs)}"]


def _run_logged(argv: list[str], progress: Progress) -> None:
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        tail: list[str] = []
        last = 0.0
        for line in proc.stdout or ():
            tail = (tail + [line.rstrip()])[-20:]
            if time.monotonic() - last > 5 and line.startswith("I: "):  # one line every 5 s
                progress("  " + line[3:].strip())
                last = time.monotonic()
        if proc.wait() != 0:
            raise ImageError(f"{argv[0]} failed: {tail[-1] if tail else 'no output'}",
                             hint="check that Debian's archive is reachable, or set "
                                  "SOCKETLAB_DEBIAN_MIRROR to a mirror you can reach")


def _import(client: docker.DockerClient, root: Path, tag: str) -> None:
    repo, _, version = tag.partition(":")
    excludes = [f"--exclude=./{pattern}" for pattern in BASE_EXCLUDES]
    with subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", *excludes, "-c", "."],
                          stdout=subprocess.PIPE) as tar:
        client.api.import_image_from_stream(tar.stdout, repository=repo, tag=version or "latest",
                                            changes=['CMD ["/bin/bash"]'])
        if tar.wait() != 0:
            raise ImageError(f"packing {root} failed", hint="check free disk space")


def unmount_below(root: Path) -> None:
    """Unmount whatever is mounted below `root`, deepest first (an interrupted debootstrap's
    /proc or /sys, a sandbox node's container layers), so that removing the folder never
    removes through a mount."""
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return
    for mountpoint in sorted((m for m in mounts if m.startswith(str(root) + "/")), reverse=True):
        subprocess.run(["umount", "-l", mountpoint], check=False, capture_output=True)


def ensure_compose_images(compose_file: Path, client: docker.DockerClient, progress: Progress,
                          env: Mapping[str, str] | None = None) -> list[ImageInfo]:
    """Every image the compose file builds itself (a service with both `image:` and a local
    `build:`), built when missing or when its folder changed, as ensure_image does. Compose
    alone would keep using a stale image after your code changed."""
    from socketlab.lab.bounds import Context  # PyYAML: only here
    from socketlab.lab.bounds import build as build_allowed
    from socketlab.lab.topofile import dotenv, read_document

    values = {**dotenv(compose_file.parent / ".env"), **os.environ, **(env or {})}
    doc = read_document(compose_file, values)  # bounded, resolved: what compose would build
    folder = compose_file.resolve().parent
    built: dict[str, ImageInfo] = {}
    for name, spec in (doc.get("services") or {}).items():
        spec = spec if isinstance(spec, Mapping) else {}
        build, tag = spec.get("build"), spec.get("image")
        if not build or not tag or tag in built:
            continue
        lab_image = values.get("SOCKETLAB_IMAGE") or "socketlab/lab:latest"
        problem = build_allowed(Context(str(name), tag == lab_image, folder, image=str(tag)), build)
        if problem is not None:
            raise ConfigError(f"{compose_file}: host {name!r}: build: {problem}",
                              hint="build from a folder beside the topology file")
        build = {"context": build} if isinstance(build, str) else build
        context = (compose_file.parent / build.get("context", ".")).resolve()
        args = build.get("args") or {}
        if isinstance(args, list):
            args = dict(str(a).partition("=")[::2] for a in args)
        built[tag] = ensure_image(client, tag, context, progress,
                                  buildargs={str(k): str(v) for k, v in args.items()})
    return list(built.values())


def distribute_image(source: docker.DockerClient, targets: Mapping[str, docker.DockerClient],
                     tag: str, progress: Progress) -> list[str]:
    """Copy the image `tag` from the `source` engine to every target engine that lacks it
    (the same image id), as `docker save | docker load` does: no registry needed. The
    image is saved once to a spool file, then loaded into the targets side by side, with
    progress. Returns the names of the targets it was loaded into."""
    image = local_image(source, tag)
    if image is None:
        raise ImageError(f"the image {tag} is not on this machine's engine, so it cannot be "
                         "copied to the nodes", hint="build it first (`socketlab build`)")
    need = [name for name, client in targets.items()
            if getattr(local_image(client, tag), "id", None) != image.id]
    if not need:
        return []
    size = image.attrs.get("Size", 0)
    progress(f"copying {tag} ({size / 1e6:.0f} MB) to {', '.join(need)}: docker save | load")
    with tempfile.TemporaryFile() as spool:
        for chunk in source.api.get_image(tag, chunk_size=1 << 20):
            spool.write(chunk)
        spool.flush()
        total = spool.tell()

        def load(name: str) -> None:
            tell = _every_quarter(lambda pct: progress(f"  {name}: {pct}% loaded"))
            for _line in targets[name].api.load_image(_chunks(spool.fileno(), total, tell), quiet=True):
                pass
            if getattr(local_image(targets[name], tag), "id", None) != image.id:
                raise ImageError(f"loading {tag} into node {name} did not give the same image",
                                 hint="check the node's disk space and `docker images` there")

        with ThreadPoolExecutor(max_workers=len(need)) as pool:
            for future in [pool.submit(load, name) for name in need]:
                future.result()
    return need


def _chunks(fd: int, total: int, tell: Callable[[int], None]) -> Iterator[bytes]:
    """The spool file's bytes from its start (pread: loads side by side share the file),
    with the share sent so far told as they go."""
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        offset += len(chunk)
        tell(100 * offset // max(total, 1))
        yield chunk


def _every_quarter(tell: Callable[[int], None]) -> Callable[[int], None]:
    """Pass on a percentage only when it crosses 25, 50, 75 or 100."""
    shown = [0]

    def maybe(pct: int) -> None:
        if pct >= shown[0] + 25:
            shown[0] = pct - pct % 25
            tell(shown[0])
    return maybe
