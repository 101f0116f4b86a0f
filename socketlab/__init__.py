"""socketlab: a containerized network lab that makes a post on TCP and UDP sockets real.

    from socketlab import Lab, LabConfig, Options, run_pair
    with Lab(LabConfig()) as lab:
        run = run_pair(lab, Options(proto="tcp"))
"""

from socketlab.config import LabConfig
from socketlab.errors import LabError
from socketlab.lab import Lab
from socketlab.programs import Options, PairRun, run_pair

__all__ = ["Lab", "LabConfig", "LabError", "Options", "PairRun", "run_pair"]
__version__ = "0.1.0"
