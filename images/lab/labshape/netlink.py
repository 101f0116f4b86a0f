"""nfnetlink_queue from Python's stdlib: a socket bound to one netfilter queue (packets in,
verdicts out), and a raw socket for the copies lab-nfq sends. lab-nfq's plumbing; the
decisions are nfq.py's."""

from __future__ import annotations

import os
import socket
import struct

# -- netlink numbers (linux/netlink.h, linux/netfilter/nfnetlink_queue.h) -----------------
NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_PACKET = 2
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD = 1, 2, 10
NF_DROP, NF_ACCEPT = 0, 1
HOOKS = {0: "prerouting", 1: "input", 2: "forward", 3: "output", 4: "postrouting"}
SO_MARK, SO_RCVBUFFORCE = 36, 33  # not in Python's socket module
SOL_NETLINK, NETLINK_NO_ENOBUFS = 270, 5


# -- the netlink side -------------------------------------------------------------------------
def nlmsg(msg_type: int, flags: int, queue: int, attrs: bytes, seq: int = 0) -> bytes:
    """One netlink message: nlmsghdr + nfgenmsg (family, version, queue number) + attributes."""
    body = struct.pack("!BBH", socket.AF_UNSPEC, 0, queue) + attrs
    header = struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg_type, flags, seq, 0)
    return header + body


def nlattr(attr_type: int, value: bytes) -> bytes:
    """One attribute: length, type, value, padded to 4 bytes."""
    raw = struct.pack("=HH", 4 + len(value), attr_type) + value
    return raw + b"\0" * (-len(raw) % 4)


def attributes(buf: bytes, start: int, end: int) -> dict[int, bytes]:
    """The attributes of one message, by type."""
    found = {}
    while start + 4 <= end:
        length, attr_type = struct.unpack_from("=HH", buf, start)
        if length < 4:
            break
        found[attr_type & 0x3FFF] = buf[start + 4:start + length]  # without the flag bits
        start += (length + 3) & ~3
    return found


class NfQueue:
    """A netlink socket bound to one netfilter queue: packets in, verdicts out."""

    def __init__(self, queue: int, limit: int) -> None:
        self.queue = queue
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self._big_buffer()
        self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        self.sock.bind((0, 0))
        self.early: list[tuple[int, int, bytes | None]] = []  # packets seen while binding
        self._configure(nlattr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET))
                        + nlattr(NFQA_CFG_PARAMS, struct.pack("!IB", 0xFFFF, NFQNL_COPY_PACKET))
                        + nlattr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", limit)))

    def _big_buffer(self) -> None:
        """A 8 MB receive buffer, so a burst waits in it instead of being dropped."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)

    def _configure(self, attrs: bytes) -> None:
        """Send a config message and wait for the kernel's answer (an error, or 0)."""
        self.sock.sendto(nlmsg(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, self.queue, attrs, 1), (0, 0))
        while True:
            for kind, value in self._messages(self.sock.recv(1 << 16)):
                if kind == "error":
                    if value:
                        raise OSError(value, f"queue {self.queue}: {os.strerror(value)}")
                    return
                self.early.append(value)

    def _messages(self, buf: bytes):
        """("packet", (id, hook, payload)) and ("error", errno) for each message in `buf`."""
        offset = 0
        while offset + 16 <= len(buf):
            length, msg_type = struct.unpack_from("=IH", buf, offset)
            if msg_type == NLMSG_ERROR:
                yield "error", -struct.unpack_from("=i", buf, offset + 16)[0]
            elif msg_type == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                attrs = attributes(buf, offset + 20, offset + length)
                packet_id, _hw, hook = struct.unpack("!IHB", attrs[NFQA_PACKET_HDR][:7])
                yield "packet", (packet_id, hook, attrs.get(NFQA_PAYLOAD))
            offset += (length + 3) & ~3

    def receive(self, most: int = 256) -> list[tuple[int, int, bytes | None]]:
        """The packets waiting now (at most `most`), without blocking."""
        got, self.early = self.early, []
        while len(got) < most:
            try:
                buf = self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            got += [value for kind, value in self._messages(buf) if kind == "packet"]
        return got

    def verdict(self, packet_id: int, accept: bool, payload: bytes | None = None) -> None:
        attrs = nlattr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT if accept else NF_DROP, packet_id))
        if payload is not None:  # the packet goes on with these bytes instead
            attrs += nlattr(NFQA_PAYLOAD, payload)
        self.sock.sendto(nlmsg(NFQNL_MSG_VERDICT, NLM_F_REQUEST, self.queue, attrs), (0, 0))

    def close(self) -> None:
        """Unbind (the kernel then passes packets by, thanks to --queue-bypass) and close."""
        try:
            self._configure(nlattr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_UNBIND, socket.AF_INET)))
        finally:
            self.sock.close()

    def kernel_counts(self) -> dict[str, int]:
        """The kernel's own counters for this queue (/proc/net/netfilter/nfnetlink_queue)."""
        try:
            with open("/proc/net/netfilter/nfnetlink_queue") as f:
                for line in f:
                    cols = [int(c) for c in line.split()]
                    if cols and cols[0] == self.queue:  # queue, portid, held, mode, range, ...
                        return {"held": cols[2], "queue_dropped": cols[5], "user_dropped": cols[6]}
        except (OSError, ValueError):
            pass
        return {}


def raw_sender(mark: int) -> socket.socket:
    """A raw socket that sends whole IP packets as given, each carrying `mark` (SO_MARK)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # IP_HDRINCL implied
    sock.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
    return sock
