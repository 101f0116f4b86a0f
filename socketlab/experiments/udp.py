"""The post's UDP claims (filled in by the experiments for C2, C5-C10)."""

EXPERIMENTS = ()
