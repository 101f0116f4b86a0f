"""What every instrument prints: one event per line, `NAME key=value ... t=UNIXTIME`, the
format of the lab's programs (socketlab.observe.events reads both). Stdlib only."""

import json
import time


def emit(name: str, **fields) -> None:
    """One event line, flushed at once (a reader waits on `listening`)."""
    words = [name]
    for key, value in fields.items():
        if isinstance(value, float):
            value = f"{value:.6f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.1f}"
        text = str(value)
        if not text or any(c in text for c in ' "=\\') or not text.isprintable():
            text = json.dumps(text)
        words.append(f"{key}={text}")
    print(" ".join(words + [f"t={time.time():.6f}"]), flush=True)


def steady(times: list, sizes: list) -> dict:
    """Bytes and seconds after the first 5% of the bytes (a token bucket's burst, the ramp)."""
    total, acc, j = sum(sizes), 0, 0
    while j < len(sizes) and acc < 0.05 * total:
        acc, j = acc + sizes[j], j + 1
    span = times[-1] - times[j - 1] if j and times else 0.0
    return {"steady_bytes": total - acc, "steady_s": span}
