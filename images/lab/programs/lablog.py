"""How the lab's programs print what they do. Not part of the lesson: read the programs.

Each event is one line, `EVENT key=value ... t=UNIXTIME`, flushed at once, so a person
reads it easily and socketlab parses it (strings are JSON-quoted; t is when it happened,
on the same clock as the packet captures).
"""

import json
import signal
import sys
import time


def event(name, **fields):
    """Print one event line, flushed at once so a reader sees it immediately."""
    print(
        name,
        *(f"{key}={value}" for key, value in fields.items()),
        f"t={time.time():.6f}",
        flush=True,
    )


def addr(sockaddr):
    return f"{sockaddr[0]}:{sockaddr[1]}"  # ('10.0.0.5', 6666) -> 10.0.0.5:6666


def text(data):
    return json.dumps(data.decode("latin-1"))  # bytes as a JSON string, one char per byte


def report(exc):
    """Print `error op=CALL errno=NAME msg="..."` for an OSError raised in main()."""
    import errno  # imported here, on the error path only: every program starts faster
    import re
    import traceback

    # Which socket call failed? The traceback knows the line of main() that raised.
    line = [f.line for f in traceback.extract_tb(exc.__traceback__) if f.name == "main"][-1]
    call = re.search(r"\.(\w+)\(", line)
    timeout = "ETIMEDOUT" if isinstance(exc, TimeoutError) else exc.errno  # no errno on timeouts
    event(
        "error",
        op=call.group(1) if call else "?",
        errno=errno.errorcode.get(exc.errno, timeout),
        msg=json.dumps(exc.strerror or str(exc)),
    )


def run(main):
    """Run a program's main(): a socket error becomes one `error` line and exit status 1."""
    # As PID 1 in a container, Python ignores SIGTERM unless it handles it: exit cleanly.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        main()
    except OSError as exc:
        report(exc)
        sys.exit(1)
