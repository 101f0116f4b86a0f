"""The post's claims C1-C10, the shaping experiments S1-S3 and path MTU (P1), as experiments.

base.py      Experiment, Evidence, Verdict, Result; running one in its own folder
registry.py  the catalogue, the choice of some (`select`) and its words for the help (`described`)
stats.py     the statistics the judges and the benchmarks share
tcp.py, udp.py, load.py (receiving), sending.py, shaped.py, congestion.py, pmtu.py
             the experiments, one module per theme
"""
