"""Every example of the README and the docs, run in page order against a real engine, its
output compared with what the page shows. A page whose example breaks fails here."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.docs.conftest import EXECUTED
from tests.docs.pages import ROOT, Block, Command, blocks, commands, output_lines, output_matches, pages

pytestmark = pytest.mark.integration
_STATE = ("export ", "cd ", "unset ")  # commands whose effect later commands of the page see


def _shown(cmd: Command, out: str, code: int, block: Block) -> str:
    expected = "\n".join(cmd.expected) or "(no output shown)"
    return (f"{block.page.relative_to(ROOT)}:{cmd.line}: `{cmd.cmd}` (exit {code})\n"
            f"--- the page shows:\n{expected}\n--- it printed:\n{out[-6000:]}")


def as_a_reader_sees_it(out: str, env: dict) -> str:
    """The output with the isolation undone: the page's lab name, subnet and image put back as a
    reader who sets none of them sees them (`socketlab`, 192.168.33.0/24, socketlab/lab:latest),
    and paths in the copy (or linked from the checkout) as the reader's clone shows them."""
    for folder in (env["DOCS_TEST_COPY"], str(ROOT)):  # paths from the reader's own clone
        out = out.replace(folder + "/", "")
    if env.get("SOCKETLAB_IMAGE"):
        out = out.replace(env["SOCKETLAB_IMAGE"], "socketlab/lab:latest")
    out = out.replace(env["SOCKETLAB_PYTEST_PREFIX"], "socketlab-pytest")
    out = out.replace(env["SOCKETLAB_PROJECT"], "socketlab")
    net = env["SOCKETLAB_SUBNET"].rsplit(".", 1)[0] + "."  # 192.168.231.
    return out.replace(net, "192.168.33.")


def run_console(block: Block, cwd, env, state: list[str]) -> int:
    ran = 0
    for cmd in commands(block):
        script = "\n".join([*state, cmd.cmd])
        done = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=900)
        ran += 1
        out = as_a_reader_sees_it(done.stdout, env)
        shown = [line for line in cmd.expected if line.strip() != "..."]
        if done.returncode != 0 and not shown:
            pytest.fail(f"failed, and the page shows no error:\n{_shown(cmd, out, done.returncode, block)}")
        if not output_matches(cmd.expected or ("...",), output_lines(out)):
            pytest.fail(f"the output differs from the page's:\n{_shown(cmd, out, done.returncode, block)}")
        if cmd.cmd.startswith(_STATE):
            state.append(cmd.cmd)
    return ran


def run_python(block: Block, cwd, env) -> None:
    done = subprocess.run([sys.executable, "-c", block.text], cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, \
        f"{block.where}: the python example failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_page(page, page_env):
    work, env = page_env
    state: list[str] = []
    run_blocks = [b for b in blocks(page) if b.runs]
    started, ran_cmds = time.monotonic(), 0
    for block in run_blocks:
        if block.lang == "console":
            ran_cmds += run_console(block, work, env, state)
        else:
            run_python(block, work, env)
    EXECUTED.append((str(page.relative_to(ROOT)), len(run_blocks), ran_cmds,
                     time.monotonic() - started))
