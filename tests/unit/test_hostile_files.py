"""The shipped hostile suite (tests/data/hostile): every file there tries to widen a host, or to
be what it is not, and is refused in one line before anything is made. Each file says in its
first two lines what it tries and the words of its refusal. The files under accepted/ widen
nothing the lab does not grant: they are read, and rendered with the lab's bounds."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from socketlab.errors import ConfigError
from socketlab.lab.allowlist import NETWORK_KEYS, SERVICE_KEYS, TOP_KEYS
from socketlab.lab.assets import ROOT
from socketlab.lab.composefile import read_topology, render
from socketlab.lab.topofile import MAX_BYTES, read_text

HOSTILE = ROOT / "tests" / "data" / "hostile"
LAB = "socketlab/lab:test"
ENV = {"SOCKETLAB_IMAGE": LAB}
CASES = sorted(HOSTILE.glob("*.yml"))


def header(path: Path) -> tuple[str, str]:
    tries, refused = path.read_bytes().decode("ascii", errors="replace").splitlines()[:2]
    assert tries.startswith("# tries: "), path.name
    assert refused.startswith("# refused: "), path.name
    return tries.removeprefix("# tries: "), refused.removeprefix("# refused: ")


def test_the_suite_has_at_least_forty_cases_each_saying_what_it_tries():
    assert len(CASES) >= 40
    for path in CASES:
        header(path)


def in_a_copy(case: Path, tmp_path: Path) -> Path:
    """The case in a copy of the suite's folder, with parts/to-root -> / made there: a link
    to / is never kept in the project (pytest, an sdist or a backup would walk the machine)."""
    import shutil

    copy = tmp_path / "hostile"
    shutil.copytree(HOSTILE, copy, symlinks=True)
    (copy / "parts" / "to-root").symlink_to("/")
    return copy / case.name


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_a_hostile_file_is_refused_in_one_line_naming_what(case, tmp_path):
    _tries, refused = header(case)
    path = in_a_copy(case, tmp_path)

    with pytest.raises(ConfigError) as info:
        read_topology(path, ENV, lab_image=LAB)

    message = str(info.value)
    assert refused in message
    assert "\n" not in message
    assert info.value.hint
    assert "\n" not in info.value.hint
    assert str(path) in message or path.name in message or "parts/" in message


def test_a_bind_of_a_folder_given_with_mount_is_accepted_and_elsewhere_refused(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    lab = tmp_path / "lab" / "t.yml"
    lab.parent.mkdir()
    lab.write_text(f"services:\n  server:\n    image: {LAB}\n    volumes: ['{folder}:/data:ro']\n")

    with pytest.raises(ConfigError, match="neither beside the topology nor a folder given with --mount"):
        read_topology(lab, ENV, lab_image=LAB)
    topo = read_topology(lab, ENV, lab_image=LAB, mounts=[folder])

    assert topo.names == ("server",)


def test_a_symlink_beside_the_file_is_judged_where_it_leads(tmp_path):
    (tmp_path / "etc").symlink_to("/etc")
    lab = tmp_path / "t.yml"
    lab.write_text(f"services:\n  server:\n    image: {LAB}\n    volumes: ['./etc:/data:ro']\n")

    with pytest.raises(ConfigError, match=r"\./etc is a system path \(/etc\)"):
        read_topology(lab, ENV, lab_image=LAB)


def test_an_oversized_file_is_refused_without_reading_it_whole(tmp_path):
    big = tmp_path / "big.yml"
    big.write_text("# padding\n" * (MAX_BYTES // 10 + 1))

    with pytest.raises(ConfigError, match="is larger than 1024 KiB"):
        read_topology(big, ENV, lab_image=LAB)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_is_not_a_topology(device):
    with pytest.raises(ConfigError, match=f"the topology {device} is not a regular file"):
        read_topology(Path(device), ENV, lab_image=LAB)


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    fifo = tmp_path / "lab.yml"
    os.mkfifo(fifo)
    said: list[BaseException] = []
    reader = threading.Thread(target=lambda: _catch(said, fifo), daemon=True)
    reader.start()
    reader.join(10)

    assert not reader.is_alive(), "reading a FIFO waited for a writer"
    assert "is not a regular file" in str(said[0])


def _catch(said: list[BaseException], path: Path) -> None:
    try:
        read_text(path)
    except ConfigError as e:
        said.append(e)


def test_a_dotenv_that_is_a_fifo_is_refused_too(tmp_path):
    os.mkfifo(tmp_path / ".env")
    (tmp_path / "t.yml").write_text(f"services:\n  server: {{image: {LAB}}}\n")

    with pytest.raises(ConfigError, match=r"\.env file .* is not a regular file"):
        read_topology(tmp_path / "t.yml", ENV, lab_image=LAB)


def test_the_latin1_byte_is_named_with_its_offset():
    data = (HOSTILE / "latin1.yml").read_bytes()
    with pytest.raises(ConfigError) as info:
        read_topology(HOSTILE / "latin1.yml", ENV, lab_image=LAB)
    assert f"byte 0xe9 at offset {data.index(0xE9)}" in str(info.value)


def test_unsealed_lifts_the_named_keys_for_the_named_host_only():
    privileged = HOSTILE / "privileged.yml"
    topo = read_topology(privileged, ENV, lab_image=LAB, unsealed=["server"])
    assert topo.host("server").unsealed
    rendered = render(topo.place(), lab_image=LAB)["services"]["server"]
    assert rendered["privileged"] is True
    assert rendered["labels"]["io.socketlab.unsealed"] == "1"
    with pytest.raises(ConfigError, match="ports: publishes a port"):  # the lab's traffic rule stays
        read_topology(HOSTILE / "ports.yml", ENV, lab_image=LAB, unsealed=["server"])
    with pytest.raises(ConfigError, match="--unsealed names nobody, not a host"):
        read_topology(privileged, ENV, lab_image=LAB, unsealed=["nobody"])


# -- accepted files: no more than the lab grants --------------------------------------------------
ACCEPTED = sorted((HOSTILE / "accepted").glob("*.yml"))


@pytest.mark.parametrize("path", ACCEPTED, ids=lambda p: p.stem)
def test_an_accepted_file_renders_with_the_labs_bounds_and_no_more(path):
    topo = read_topology(path, ENV, lab_image=LAB)
    doc = render(topo.place(), lab_image=LAB)

    for name, spec in doc["services"].items():
        lab_image = spec["image"] == LAB
        assert set(spec.get("cap_add") or []) <= ({"NET_ADMIN"} if lab_image else set()), name
        assert "no-new-privileges:true" in spec["security_opt"]
        assert spec["memswap_limit"] == spec["mem_limit"]
        assert not spec.get("privileged")
        assert "entrypoint" not in spec
        assert 1 <= spec["pids_limit"] <= 256
    assert all(net["internal"] for net in doc["networks"].values())


# -- any value of any kind: a one-line refusal or an acceptance, never a traceback --------------
KINDS = [None, True, 0, -1, 3.5, "x", "/", "", [], ["x"], [None], [1, "a=b"], {}, {"a": None},
         {"a": [1]}, {"type": "bind"}, {"context": 5}, [{"source": 1}]]


def _documents():
    for key in SERVICE_KEYS:
        yield from ({"services": {"s": {"image": LAB, key: v}}} for v in KINDS)
    for key in NETWORK_KEYS:
        yield from ({"services": {"s": {"image": LAB, "networks": ["n"]}}, "networks": {"n": {key: v}}}
                    for v in KINDS)
    for key in TOP_KEYS:
        yield from ({"services": {"s": {"image": LAB}}, key: v} for v in KINDS)
    for v in KINDS:
        yield from ({"services": v}, {"services": {"s": v}}, v,
                    {"networks": v, "services": {"s": {"image": LAB}}})


def test_every_key_with_a_value_of_every_kind_is_refused_in_one_line_or_taken(tmp_path):
    import yaml

    path = tmp_path / "t.yml"
    said = []
    for doc in _documents():
        path.write_text(yaml.safe_dump(doc))
        try:
            read_topology(path, ENV, lab_image=LAB)
        except ConfigError as e:  # anything else: the test fails with its traceback
            said.append(str(e))
    assert said
    assert [line for line in said if "\n" in line] == []


def test_an_included_file_is_taken_in_and_nothing_of_include_reaches_compose():
    topo = read_topology(HOSTILE / "accepted" / "include_plain.yml", ENV, lab_image=LAB)
    doc = render(topo.place(), lab_image=LAB)

    assert topo.names == ("server", "client")
    assert "include" not in doc
    assert doc["services"]["client"]["pids_limit"] == 128


def test_more_aliases_than_a_topology_needs_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "many.yml"
    path.write_text("x-a: &a 1\nx-list: [" + ", ".join(["*a"] * 1001) + "]\n"
                    f"services:\n  server: {{image: {LAB}}}\n")

    with pytest.raises(ConfigError, match=r"many\.yml: more than 1000 YAML aliases"):
        read_topology(path, ENV, lab_image=LAB)


def test_a_value_with_a_line_break_is_still_refused_in_one_line(tmp_path):
    path = tmp_path / "t.yml"
    path.write_text(f'services:\n  server:\n    image: {LAB}\n    volumes: ["/etc\\nhint: all fine:/x"]\n'
                    '    mem_limit: "8g\\n"\n')

    with pytest.raises(ConfigError) as info:
        read_topology(path, ENV, lab_image=LAB)

    assert "\n" not in str(info.value)
    assert "volumes: /etc\\nhint (/etc\\nhint) is neither beside" in str(info.value)
