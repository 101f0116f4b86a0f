"""The post's claims C1-C10 (and the shaping experiments S1-S3) as experiments.

base.py      Experiment, Evidence, Verdict, Result; running one in its own folder
registry.py  the catalogue and the choice of some (`select`)
stats.py     the statistics the judges and the benchmarks share
tcp.py, udp.py, load.py (receiving), sending.py, shaped.py, congestion.py, pmtu.py
             the experiments, one module per theme
"""
