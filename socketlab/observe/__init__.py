"""Seeing what happened: capture (tcpdump in the hosts), pcap reading and dissection (pcap,
analysis), ladder diagrams, the kernel's counters, the programs' events, and `observe` (all of
them around one action)."""
