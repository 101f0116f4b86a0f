"""socketlab about itself: what this machine offers it (doctor), how fast it is (bench)."""
