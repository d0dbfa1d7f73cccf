"""A plain Python SOCK_SEQPACKET client: sends each size as one record and
checks that the same record comes back whole. Prints one line per message."""
import socket
import sys

path = sys.argv[1]
sizes = [int(s) for s in sys.argv[2].split(",")]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(path)
for i, size in enumerate(sizes):
    msg = bytes((i * 31 + j) % 251 for j in range(size))
    s.send(msg)
    back = s.recv(size + 1)
    if back != msg:
        sys.exit(f"message {i} of {size} bytes came back as {len(back)} different bytes")
    print(f"ok {i} {size}")
s.close()
