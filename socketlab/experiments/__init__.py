"""The post's claims C1-C10 as experiments, one module per theme (see socketlab.experiment)."""

from socketlab.experiments.load import EXPERIMENTS as _LOAD
from socketlab.experiments.shaped import EXPERIMENTS as _SHAPED
from socketlab.experiments.tcp import EXPERIMENTS as _TCP
from socketlab.experiments.udp import EXPERIMENTS as _UDP

EXPERIMENTS = (*_TCP, *_UDP, *_LOAD, *_SHAPED)
