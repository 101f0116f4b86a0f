"""The image's shaper as the host side sees it: images/lab/labshape loaded here, so a spec is
checked by the one validator the hosts use, before anything starts (socketlab.act.shaping
applies specs; this module is the lab's part: the SOCKETLAB_SHAPE_* a lab starts with).

    SOCKETLAB_SHAPE_CLIENT="egress: loss 150%" socketlab up
      -> error: SOCKETLAB_SHAPE_CLIENT: egress: loss 150% is out of range: use 0-100%
         (refused before any container or network exists)
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from socketlab.errors import ConfigError
from socketlab.lab.assets import IMAGE_CONTEXT

LABSHAPE = IMAGE_CONTEXT / "labshape"
ENV = {"server": "SOCKETLAB_SHAPE_SERVER", "client": "SOCKETLAB_SHAPE_CLIENT"}
READY = "/run/lab-host.ready"  # lab-host writes it once the host's own shaping is in place


def labshape() -> ModuleType:
    """The in-image package (images/lab/labshape): one source for specs, faults and plans.
    Its submodules are `labshape().spec`, `.faults`, `.backends`, `.host`, ..."""
    package, modules = _labshape()
    prefix = f"{package.__name__}."
    modules.update({n: m for n, m in sys.modules.items() if n.startswith(prefix)})
    for name, module in modules.items():  # a harness that restores sys.modules (pytester)
        sys.modules.setdefault(name, module)  # must not leave its late relative imports lost
    return package


@functools.lru_cache(maxsize=1)
def _labshape() -> tuple[ModuleType, dict[str, ModuleType]]:
    module = _load_labshape()
    return module, {module.__name__: module}


def _load_labshape() -> ModuleType:
    name = "socketlab_labshape"
    spec = importlib.util.spec_from_file_location(name, LABSHAPE / "__init__.py",
                                                  submodule_search_locations=[str(LABSHAPE)])
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot load {LABSHAPE}", hint="restore images/lab/labshape")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and relative imports look their module up there
    spec.loader.exec_module(module)
    return module


def env_shaping(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """host -> direction -> Impairment, from SOCKETLAB_SHAPE_SERVER/_CLIENT; ConfigError (one
    line, naming the variable) for the first that is not valid. Empty: no shaping asked for."""
    ls = labshape()
    found = {}
    for host, name in ENV.items():
        text = environ.get(name, "")
        if not text.strip():
            continue
        try:
            found[host] = ls.parse_env(text)
        except ls.ShapeError as e:
            raise ConfigError(f"{name}: {e}", hint="e.g. \"egress: delay 100ms loss 5%; ingress: rate "
                                                   "1mbit\" (or unset it)") from None
    return {host: wanted for host, wanted in found.items() if wanted}


def wait_argv(seconds: float) -> list[str]:
    """Waits in a host until lab-host has put the host's shaping in place (exit 1 if not)."""
    tries = int(seconds / 0.1)
    return ["sh", "-c", f"for i in $(seq {tries}); do [ -e {READY} ] && exit 0; sleep 0.1; done; exit 1"]
