"""labshape: impair the packets that leave (egress) or arrive at (ingress) a lab host.

One spec, read like tc's netem (spec.py: the one Impairment and its one validator), served
by one of two backends (backends/): the kernel's netem where it has it, else the engine
(iptables + NFQUEUE + lab-nfq); tbf for the rate and an ifb for the arriving direction in
both. Packet-exact faults (faults.py) and lab-nfq's per-packet decisions (nfq.py) read the
same spec. probe.py finds what the kernel offers; host.py applies, clears and shows.

Who imports it: `lab-shape` and `lab-nfq` in every lab host (images/lab/bin), socketlab on
the host side (socketlab.act.shaping loads this folder from the image context, so a spec is
refused there with the message the host would give, before anything is touched), and the
user-mode-kernel harness (socketlab.tools.uml) that runs the netem backend for real.
Stdlib only; everything but steps.py, host.py and probe.probe is pure.
"""

from . import backends, faults, host, nfq, paths, spec, steps
from .backends import BACKENDS, build_plan, choose_backend, clear_plan, missing, needs, support_table
from .faults import fault_text, parse_fault, parse_fault_text
from .host import ApplyFailed, apply, read_state, run_clear, show
from .probe import FEATURES, probe
from .spec import DIRECTIONS, Impairment, ShapeError, parse, parse_env, parse_time
from .steps import StepResult

__all__ = ["BACKENDS", "DIRECTIONS", "FEATURES", "ApplyFailed", "Impairment", "ShapeError", "StepResult",
           "apply", "build_plan", "choose_backend", "clear_plan", "missing", "needs", "parse", "parse_env",
           "fault_text", "parse_fault", "parse_fault_text", "parse_time", "probe", "read_state",
           "run_clear", "show", "support_table", "backends", "faults", "host", "nfq", "paths", "spec",
           "steps"]
