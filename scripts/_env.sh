# Sourced by scripts/lab and scripts/test: a virtual environment with socketlab in it,
# made (or brought up to date) on first use. Override its place with SOCKETLAB_VENV.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${SOCKETLAB_VENV:-$root/.venv}
python=${PYTHON:-python3}
# A Ctrl-C or SIGTERM while a script prepares is said as an interruption once the step it came
# in has ended: never as that step's failure ("needs Python 3.10" when the probe was interrupted).
# `preparing off` before a command that handles its own signals (socketlab, pytest).
preparing() {
  if [ "$1" = on ]; then trap 'echo "interrupted" >&2; exit 130' INT TERM; else trap - INT TERM; fi
}
preparing on

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "error: socketlab needs Python 3.10 or newer ($python is $("$python" -V 2>&1))" >&2
  echo "hint: install a newer python3, or point PYTHON at one" >&2
  exit 2
fi
stamp=$venv/.socketlab-installed
if [ ! -x "$venv/bin/python" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  echo "• preparing $venv: socketlab and its Python packages (first run only)" >&2
  if ! "$python" -m venv "$venv" >/dev/null; then
    echo "error: could not make a virtual environment in $venv" >&2
    echo "hint: on Debian or Ubuntu, install python3-venv" >&2
    exit 2
  fi
  if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root[test]"; then
    echo "error: installing socketlab's Python packages failed (see pip's message above)" >&2
    echo "hint: check that PyPI is reachable, then run the command again" >&2
    exit 2
  fi
  # An editable install leaves the bytecode to the first run, which writes it unless
  # PYTHONDONTWRITEBYTECODE is set (then every command compiles socketlab again): compile it
  # now, as pip does for an installed wheel.
  "$venv/bin/python" -m compileall -q "$root/socketlab" >/dev/null || true
  touch "$stamp"
fi
