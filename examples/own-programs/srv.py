"""A server of your own for the lab: reads what one TCP client sends until it closes its side,
answers it in capitals, and exits. Runs in the server host:

    python3 /work/srv.py [PORT]        (default 6666, the lab's port)
"""

import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 6666

with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
    listener.bind(("", port))
    listener.listen(1)
    print(f"listening port={port}", flush=True)
    conn, (peer, peer_port) = listener.accept()
    with conn:
        print(f"accepted from={peer}:{peer_port}", flush=True)
        data = b""
        while chunk := conn.recv(1024):  # until the client shuts its side
            data += chunk
        print(f"received n={len(data)} data={data.decode()!r}", flush=True)
        conn.sendall(data.upper())
        print(f"answered n={len(data)}", flush=True)
