"""socketlab: a containerized network lab for the TCP/UDP socket post."""
