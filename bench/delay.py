"""Delay every packet of a network namespace by a fixed time, for kernels without tc netem.

    nsenter --net=/run/netns/NAME python -m bench.delay --queue 0 --delay-ms 20

With `iptables -t mangle -A OUTPUT -j NFQUEUE --queue-num 0` in the namespace, the kernel hands each
outgoing packet's metadata to this process over netlink (NFQUEUE) and holds the packet until a
verdict comes back; the verdict is given `delay-ms` after the packet arrived. Every packet is held
the same time, so packets leave in the order they came: one batch verdict releases all that are due.
On loopback a packet goes out once, so a round trip gets twice the delay, as under
`tc qdisc add dev lo root netem delay 20ms`.

Standard library only: the netlink messages are packed here (linux/netfilter/nfnetlink_queue.h).
"""

from __future__ import annotations

import argparse
import collections
import os
import select
import signal
import socket
import struct
import sys
import time
from types import FrameType

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
QUEUE_MAXLEN = 200_000
RCVBUF = 64 * 1024 * 1024


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def _message(kind: int, queue: int, attributes: bytes, flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attributes
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, seq, 0) + body


def _check_ack(sock: socket.socket, what: str) -> None:
    data = sock.recv(65536)
    _length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data)
    if kind == NLMSG_ERROR:
        (error,) = struct.unpack_from("=i", data, 16)
        if error:
            raise SystemExit(f"nfqueue {what} refused: {os.strerror(-error)}")


def bind(queue: int) -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE: root may exceed rmem_max
    sock.bind((0, 0))
    sock.send(_message(NFQNL_MSG_CONFIG, queue, _attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)),
                       NLM_F_REQUEST | NLM_F_ACK, 1))  # fmt: skip
    _check_ack(sock, "bind")
    params = _attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
    params += _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN))
    sock.send(_message(NFQNL_MSG_CONFIG, queue, params, NLM_F_REQUEST | NLM_F_ACK, 2))
    _check_ack(sock, "configuration")
    return sock


def packet_ids(data: bytes) -> list[int]:
    """The packet ids of the NFQNL_MSG_PACKET messages in one netlink read."""
    ids = []
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            at = offset + 20  # nlmsghdr, nfgenmsg
            while at + 4 <= offset + length:
                attr_length, attr_kind = struct.unpack_from("=HH", data, at)
                if attr_length < 4:
                    break
                if attr_kind & 0x7FFF == NFQA_PACKET_HDR:
                    ids.append(struct.unpack_from("!I", data, at + 4)[0])
                    break
                at += (attr_length + 3) & ~3
        offset += (length + 3) & ~3
    return ids


def run(queue: int, delay_s: float) -> None:
    sock = bind(queue)
    held: collections.deque[tuple[float, int]] = collections.deque()
    stop = False

    def finish(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    print(f"delaying queue {queue} by {delay_s * 1000:g} ms", flush=True)
    while not stop:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else 0.5
        readable, _, _ = select.select([sock], [], [], timeout)
        if readable:
            now = time.monotonic()
            for packet_id in packet_ids(sock.recv(1 << 20)):
                held.append((now + delay_s, packet_id))
        now = time.monotonic()
        last = None
        while held and held[0][0] <= now:
            last = held.popleft()[1]
        if last is not None:
            # One verdict for every packet up to `last`: they were all queued before it, all are due.
            sock.send(_message(NFQNL_MSG_VERDICT_BATCH, queue, _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, last))))
    if held:  # release what is still held rather than leave it to the queue
        sock.send(_message(NFQNL_MSG_VERDICT_BATCH, queue, _attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, held[-1][1]))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delay", description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--queue", type=int, default=0, help="the NFQUEUE number the iptables rule sends to (default: 0)")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="how long each packet is held (default: 20)")
    args = parser.parse_args(argv)
    run(args.queue, args.delay_ms / 1000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
