"""A plain Python SOCK_SEQPACKET peer for records up to the kernel's limit
(Linux). Usage: seqpacket_sizes.py client|server PATH SIZES

It raises its own SO_SNDBUF as far as net.core.wmem_max allows and finds the
kernel's largest record by trying on a socket pair of its own; it prints
"limit N" (in server mode once it listens). Then, on the connection:
1. receives one record per size in SIZES, each checked byte for byte and with
   no descriptor or truncation, then the record b"after" (the ipckit end tried
   a message over the limit in between: none of it may arrive);
2. sends one record per size, tries one of limit + 1 bytes (printing the error
   the kernel gave), then sends b"after";
3. waits for the end of the channel.
"""
import errno
import socket
import sys


def pattern(n):
    base = bytes(range(251)) * (n // 251 + 2)
    return base[n % 251 : n % 251 + n]


def wmem_max():
    with open("/proc/sys/net/core/wmem_max") as f:
        return int(f.read())


def raise_sndbuf(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, wmem_max())


def largest_record():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    raise_sndbuf(a)
    buf = bytes(a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
    fits, fails = 0, len(buf)
    while fails - fits > 1:
        mid = (fits + fails) // 2
        try:
            a.send(buf[:mid], socket.MSG_DONTWAIT)
        except OSError as e:
            if e.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            fails = mid
            continue
        fits = mid
        b.recv(mid)
    return fits


def take(s, n):
    data, anc, flags, _ = s.recvmsg(n + 1, socket.CMSG_SPACE(64))
    if anc or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        sys.exit(f"a record with control data or cut: {len(data)} bytes, {anc!r}, flags {flags}")
    return data


mode, path = sys.argv[1], sys.argv[2]
sizes = [int(x) for x in sys.argv[3].split(",")]
limit = largest_record()
if mode == "server":
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(1)
    print(f"limit {limit}", flush=True)
    s, _ = listener.accept()
else:
    print(f"limit {limit}", flush=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
raise_sndbuf(s)
for n in sizes:
    data = take(s, n)
    if data != pattern(n):
        sys.exit(f"record of {n} bytes arrived as {len(data)} other bytes")
    print(f"got {n}", flush=True)
data = take(s, 16)
if data != b"after":
    sys.exit(f"expected b'after', got {data[:40]!r} ({len(data)} bytes)")
print("got after", flush=True)
for n in sizes:
    s.send(pattern(n))
    print(f"sent {n}", flush=True)
try:
    s.send(bytes(limit + 1))
    print("sent over the limit", flush=True)
except OSError as e:
    print(f"refused {errno.errorcode[e.errno]}", flush=True)
s.send(b"after")
if s.recv(16) != b"":
    sys.exit("expected the end")
print("end", flush=True)
