"""A client of your own for the lab: sends one message to srv.py, closes its side, prints the
answer. Runs in the client host:

    python3 /work/cli.py [HOST [PORT [MESSAGE]]]    (default: server 6666 "hello, lab")
"""

import socket
import sys

host = sys.argv[1] if len(sys.argv) > 1 else "server"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 6666
message = sys.argv[3] if len(sys.argv) > 3 else "hello, lab"

with socket.create_connection((host, port), timeout=5) as conn:  # 5 s: the lab answers in ms
    conn.sendall(message.encode())
    conn.shutdown(socket.SHUT_WR)  # "that is all": the server's recv() then returns b""
    answer = b""
    while chunk := conn.recv(1024):
        answer += chunk
print(f"answer data={answer.decode()!r}", flush=True)
