"""The lab image's build context: its hash (what decides a rebuild) and its package list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from socketlab.errors import ImageError
from socketlab.lab.assets import IMAGE_CONTEXT
from socketlab.lab.images import context_hash, packages


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A small build context: a Dockerfile, a script and a program."""
    root = tmp_path / "ctx"
    (root / "bin").mkdir(parents=True)
    (root / "programs").mkdir()
    (root / "Dockerfile").write_text('FROM scratch\nRUN packages="a b"\n')
    (root / "bin" / "lab-host").write_text("#!/bin/sh\necho host\n")
    (root / "bin" / "lab-host").chmod(0o755)
    (root / "programs" / "tcp_server.py").write_text("print('server')\n")
    (root / "programs" / "tcp_server.py").chmod(0o644)
    return root


def test_hash_is_16_hex_digits_and_stable(context):
    first = context_hash(context)

    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert context_hash(context) == first


def test_same_files_elsewhere_give_the_same_hash(context, tmp_path):
    copy = tmp_path / "copy"
    for path in context.rglob("*"):
        target = copy / path.relative_to(context)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
            target.chmod(path.stat().st_mode)

    assert context_hash(copy) == context_hash(context)


def test_content_change_changes_the_hash(context):
    before = context_hash(context)

    (context / "programs" / "tcp_server.py").write_text("print('server!')\n")

    assert context_hash(context) != before


def test_added_file_changes_the_hash(context):
    before = context_hash(context)

    (context / "programs" / "udp_server.py").write_text("")

    assert context_hash(context) != before


def test_renamed_file_changes_the_hash(context):
    before = context_hash(context)

    (context / "programs" / "tcp_server.py").rename(context / "programs" / "tcp_server2.py")

    assert context_hash(context) != before


@pytest.mark.parametrize(("name", "mode"), [("programs/tcp_server.py", 0o755),
                                            ("bin/lab-host", 0o644)],
                         ids=["made-executable", "made-not-executable"])
def test_executable_bit_changes_the_hash(context, name, mode):
    before = context_hash(context)

    (context / name).chmod(mode)

    assert context_hash(context) != before


def test_pycache_is_ignored(context):
    before = context_hash(context)

    cache = context / "programs" / "__pycache__"
    cache.mkdir()
    (cache / "tcp_server.cpython-311.pyc").write_bytes(b"\x00compiled")

    assert context_hash(context) == before


def test_empty_directory_is_ignored(context):
    before = context_hash(context)

    (context / "empty").mkdir()

    assert context_hash(context) == before


def test_packages_of_the_real_dockerfile():
    found = packages(IMAGE_CONTEXT / "Dockerfile")

    assert found == ["python3", "python3-scapy", "iproute2", "iptables", "tcpdump", "ethtool",
                     "procps", "iputils-ping", "iputils-tracepath", "traceroute", "netcat-openbsd",
                     "iperf3"]


def test_packages_reads_the_run_line(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text('FROM x\nRUN packages="curl  jq" \\\n    && apt-get install $packages\n')

    assert packages(dockerfile) == ["curl", "jq"]


@pytest.mark.parametrize(
    "text",
    ["FROM debian\nRUN apt-get install -y python3\n",
     'FROM debian\n  RUN packages="python3"\n',
     ""],
    ids=["no-packages-line", "indented", "empty"],
)
def test_packages_without_the_line_is_an_image_error(tmp_path, text):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(text)

    with pytest.raises(ImageError) as info:
        packages(dockerfile)

    assert str(info.value) == f"no `RUN packages=` line in {dockerfile}"
    assert info.value.hint == "restore the Dockerfile"


def test_mmdebstrap_makes_a_small_base_with_usr_merged_by_its_hook(tmp_path):
    from socketlab.lab.images import mmdebstrap_argv

    argv = mmdebstrap_argv(["python3", "tcpdump"], hooks=tmp_path)
    assert argv[:2] == ["mmdebstrap", "--variant=minbase"]
    assert f"--hook-dir={tmp_path}" in argv
    assert "--dpkgopt=path-include=/usr/share/doc/*/copyright" in argv
    assert argv[-1] == "--include=python3,tcpdump"
    assert not any(a.startswith("--hook-dir") for a in mmdebstrap_argv(["x"], tmp_path / "no"))
