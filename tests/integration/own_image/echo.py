"""A TCP echo server that says nothing: every byte a client sends comes back. Port in argv[1].
A client that goes away early (a reset) ends its own connection, never the server."""

import socket
import sys

with socket.create_server(("", int(sys.argv[1]))) as server:
    while True:
        conn, _peer = server.accept()
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass
