"""A topology file read as a careful reviewer reads it, before anything in it is believed.

    doc = read_document(Path("topologies/router.yml"), values)   # a plain dict, fully resolved

Bounded first: a regular file (never a FIFO or a device), at most MAX_BYTES, strict UTF-8 (a
stray latin-1 byte is named with its offset), YAML with at most MAX_ALIASES aliases and at most
MAX_NODES nodes once every alias is expanded (a 3-line alias bomb is refused at once). Then
resolved whole, as compose would resolve it, so that what is checked (socketlab.lab.allowlist)
is exactly what compose is given: `${VAR}` interpolation (from `.env` beside the file, the
environment, the lab's settings), top-level `include:` (the files' services and networks
taken in), and each service's `extends:` (from this file or another, merged as compose merges),
with the relative paths of other files' services made absolute. Nothing of `include` or
`extends` is left for compose to follow.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from socketlab.errors import ConfigError

MAX_BYTES = 1 << 20  # 1 MiB: the largest topology file (or .env, or extended file) read
MAX_ALIASES = 1000  # YAML aliases (*name) in one file: merge keys use a few dozen
MAX_NODES = 100_000  # YAML nodes once every alias is expanded: a large lab has a few thousand
MAX_DEPTH = 8  # extends/include chains
_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
# Keys whose lists compose adds together on extends (the others: the extending file's wins).
_ADDED_LISTS = frozenset({"volumes", "devices", "cap_add", "cap_drop", "dns", "dns_search",
                          "tmpfs", "expose", "ports", "external_links", "security_opt",
                          "env_file", "extra_hosts", "volumes_from", "links", "group_add"})
_KEYED_LISTS = frozenset({"environment", "labels", "sysctls", "extra_hosts"})


def shown(path: Path | str) -> str:
    """A path as messages name it: from the current folder when it is below it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_text(path: Path, what: str = "topology") -> str:
    """A file's text: a regular file, bounded, strict UTF-8; else one ConfigError."""
    name = shown(path)
    try:  # O_NONBLOCK: opening a FIFO does not wait for a writer (its kind is refused below)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as e:
        raise ConfigError(f"cannot read the {what} {name}: {e.strerror}",
                          hint="give the path of a compose file") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        data = None
    else:
        with os.fdopen(fd, "rb", buffering=0) as f:
            data = f.read(MAX_BYTES + 1)
    if data is None:
        raise ConfigError(f"the {what} {name} is not a regular file",
                          hint="give the path of a compose file (not a device, FIFO or folder)")
    if len(data) > MAX_BYTES:
        raise ConfigError(f"the {what} {name} is larger than {MAX_BYTES // 1024} KiB",
                          hint="a topology is a short compose file; give the right file")
    try:
        return data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise ConfigError(f"the {what} {name} is not UTF-8 text: byte 0x{data[e.start]:02x} at "
                          f"offset {e.start}",
                          hint="save it as UTF-8 (a compose file is YAML text)") from None


def load_yaml(text: str, source: str) -> Any:
    """YAML, with its aliases and their expansion bounded (ConfigError in one line)."""
    import yaml  # here: a command on a running lab reads its topology from the engine, no file

    loader = _loader_class(yaml)(text)
    loader.name = source  # what its messages name (else "<unicode string>")
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _bounded(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source} is not valid YAML{at}: {problem}",
                          hint="check the file's indentation and quoting") from None
    finally:
        loader.dispose()


def _loader_class(yaml: Any) -> type:
    class CountingLoader(yaml.SafeLoader):  # yaml: the module, passed in (imported on first use)
        """The safe loader, counting aliases as it composes (a bomb stops at MAX_ALIASES)."""

        aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    raise ConfigError(f"{self.name}: more than {MAX_ALIASES} YAML aliases",
                                      hint="expand the file (a topology needs only a few aliases)")
            return super().compose_node(parent, index)

    return CountingLoader


def _bounded(root: Any, source: str) -> None:
    """Refuse a node graph whose expansion (every alias followed) exceeds MAX_NODES."""
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = MAX_NODES + 1  # a node that contains itself: unbounded
        value = node.value
        total = 1
        if isinstance(value, list):
            for item in value:
                parts = item if isinstance(item, tuple) else (item,)
                total += sum(size(p) for p in parts)
                if total > MAX_NODES:
                    break
        sizes[id(node)] = total
        return total

    if size(root) > MAX_NODES:
        raise ConfigError(f"{source}: its YAML expands to more than {MAX_NODES:,} nodes "
                          "(an alias bomb?)", hint="a topology is a short file; expand the aliases yourself")


def dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose `.env` file (comments and blanks skipped); none if absent."""
    values: dict[str, str] = {}
    if not os.path.lexists(path):
        return values
    for line in read_text(path, ".env file").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


def interpolate(value: Any, env: Mapping[str, str], source: str = "") -> Any:
    """Compose's variable substitution in every string value (keys are left as they are)."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: _substitute(m, env, source), value)
    if isinstance(value, Mapping):
        return {k: interpolate(v, env, source) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, source) for v in value]
    return value


def _substitute(m: re.Match[str], env: Mapping[str, str], source: str) -> str:
    dollar, name, op, arg, bare = m.groups()
    if dollar:
        return "$"
    if bare:
        return env.get(bare, "")
    value = env.get(name)
    if op in (":-", ":?") and value == "":
        value = None
    if value is not None:
        return value
    if op and op.endswith("?"):
        raise ConfigError(f"{source}: variable {name} is not set: {arg or 'it is required'}",
                          hint=f"set {name} in the environment or in .env beside the file")
    return arg if op else ""


# -- resolving: include and extends -----------------------------------------------------------
def read_document(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """The file at `path` read, interpolated and resolved whole (see the module's notes)."""
    return _document(Path(os.path.abspath(path)), env, (), {})


def _document(path: Path, env: Mapping[str, str], chain: tuple[Path, ...],
              done: dict[Path, dict[str, Any]]) -> dict[str, Any]:
    """`path` resolved (`done`: the files resolved so far, each read once per reading)."""
    if path in done:
        return done[path]
    if path in chain or len(chain) >= MAX_DEPTH:
        raise ConfigError(f"{shown(chain[0] if chain else path)}: include/extends of {shown(path)} "
                          + ("loops back to it" if path in chain else f"nests over {MAX_DEPTH} deep"),
                          hint="include or extend each file once, a few levels deep at most")
    data = load_yaml(read_text(path, "topology" if not chain else "included file"), shown(path))
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{shown(path)} is not a compose file (a mapping of services: ...)",
                          hint="a topology is a compose file with services:")
    doc = interpolate({str(k): v for k, v in data.items() if not str(k).startswith("x-")},
                      env, shown(path))
    services = doc.get("services")
    if services is not None and not isinstance(services, Mapping):
        raise ConfigError(f"{shown(path)}: services: must be a mapping of hosts",
                          hint="a topology is a compose file with services:")
    doc["services"] = {str(k): v for k, v in (services or {}).items()}
    for included in _includes(doc.pop("include", None), path):
        _take_in(doc, _document(included, env, (*chain, path), done), path, included)
    for name in list(doc["services"]):
        doc["services"][name] = _extended(doc, name, path, env, (*chain, path), (), done)
    done[path] = doc
    return doc


def _includes(value: Any, path: Path) -> list[Path]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    found = []
    for item in items:
        spec = item.get("path") if isinstance(item, Mapping) else item
        for one in spec if isinstance(spec, list) else [spec]:
            if not isinstance(one, str) or not one:
                raise ConfigError(f"{shown(path)}: include: {one!r} is not a file's path",
                                  hint="give include: a list of compose files")
            found.append(Path(os.path.abspath(path.parent / os.path.expanduser(one))))
    return found


def _take_in(doc: dict[str, Any], other: Mapping[str, Any], path: Path, included: Path) -> None:
    """An included file's services and networks, made part of `doc` (a name twice: refused)."""
    for section in ("services", "networks", "volumes", "configs", "secrets"):
        theirs = other.get(section) or {}
        if not theirs:
            continue
        if not isinstance(theirs, Mapping):
            raise ConfigError(f"{shown(included)}: {section}: must be a mapping")
        ours = doc.setdefault(section, {}) or {}
        doc[section] = ours
        for name, spec in theirs.items():
            if name in ours:
                raise ConfigError(f"{shown(path)}: {section[:-1]} {name!r} is defined here and in "
                                  f"{shown(included)}", hint="give it one definition")
            ours[name] = _rebased(spec, included.parent) if section == "services" else spec


def _extended(doc: Mapping[str, Any], name: str, path: Path, env: Mapping[str, str],
              chain: tuple[Path, ...], seen: tuple[str, ...], done: dict[Path, dict[str, Any]]) -> Any:
    """The service `name` of `doc` with its `extends:` (if any) merged in, recursively."""
    spec = doc["services"][name]
    if not isinstance(spec, Mapping) or "extends" not in spec:
        return spec
    if name in seen or len(seen) >= MAX_DEPTH:
        raise ConfigError(f"{shown(path)}: host {name!r}: extends loops back to it, or nests "
                          f"over {MAX_DEPTH} deep",
                          hint="extend each service once, a few levels deep at most")
    ext = spec["extends"]
    base_name, file = (ext, None) if isinstance(ext, str) else (
        (ext.get("service"), ext.get("file")) if isinstance(ext, Mapping) else (None, None))
    if not isinstance(base_name, str) or not (file is None or isinstance(file, str)):
        raise ConfigError(f"{shown(path)}: host {name!r}: extends: needs a service (and a file)",
                          hint="e.g. extends: {file: base.yml, service: web}")
    if file is None:
        if base_name not in doc["services"]:
            raise ConfigError(f"{shown(path)}: host {name!r} extends {base_name!r}, which is not in the file")
        base = _extended(doc, base_name, path, env, chain, (*seen, name), done)
    else:
        other_path = Path(os.path.abspath(path.parent / os.path.expanduser(file)))
        other = done.get(other_path) or _document(other_path, env, chain, done)
        if base_name not in other["services"]:
            raise ConfigError(f"{shown(path)}: host {name!r} extends {base_name!r}, which is not in {file}")
        base = _rebased(other["services"][base_name], other_path.parent)
    own = {k: v for k, v in spec.items() if k != "extends"}
    return merge_service(base if isinstance(base, Mapping) else {}, own)


def merge_service(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """A service extended as compose does: mappings merged key by key, some lists added
    together, everything else the extending service's own."""
    merged = dict(base)
    for key, value in own.items():
        old = merged.get(key)
        if key in _KEYED_LISTS and old is not None:
            merged[key] = {**_keyed(old), **_keyed(value)}
        elif key in _ADDED_LISTS and isinstance(old, list) and isinstance(value, list):
            merged[key] = [*old, *(v for v in value if v not in old)]
        elif isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = {**old, **value}
        else:
            merged[key] = value
    return merged


def _keyed(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return dict(str(item).partition("=")[::2] for item in value)
    return {}


def _rebased(spec: Any, folder: Path) -> Any:
    """A service of another file with its relative paths (build context, bind sources) made
    absolute from that file's folder, as compose reads them."""
    if not isinstance(spec, Mapping):
        return spec
    out = dict(spec)
    build = out.get("build")
    if isinstance(build, str):
        out["build"] = _absolute(build, folder)
    elif isinstance(build, Mapping) and isinstance(build.get("context", "."), str):
        out["build"] = {**build, "context": _absolute(build.get("context", "."), folder)}
    if isinstance(out.get("volumes"), list):
        out["volumes"] = [_rebased_volume(v, folder) for v in out["volumes"]]
    return out


def _rebased_volume(volume: Any, folder: Path) -> Any:
    if isinstance(volume, str) and volume.startswith((".", "~")) and ":" in volume:
        source, _, rest = volume.partition(":")
        return f"{_absolute(source, folder)}:{rest}"
    if isinstance(volume, Mapping) and isinstance(volume.get("source"), str) \
            and volume["source"].startswith((".", "~")):
        return {**volume, "source": _absolute(volume["source"], folder)}
    return volume


def _absolute(text: str, folder: Path) -> str:
    return os.path.abspath(folder / os.path.expanduser(text))
