"""The command line, `socketlab ...`: a thin layer over the API (see main.py)."""

from __future__ import annotations


def main(argv=None, out=None, err=None) -> int:
    from socketlab.cli.main import main as run

    return run(argv, out, err)
