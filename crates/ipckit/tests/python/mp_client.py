"""multiprocessing.connection.Client as a peer: sends each size with
send_bytes, expects it back whole from recv_bytes."""
import sys
from multiprocessing.connection import Client

host, port = sys.argv[1], int(sys.argv[2])
sizes = [int(s) for s in sys.argv[3].split(",")]
with Client((host, port)) as conn:
    for i, size in enumerate(sizes):
        msg = bytes((i * 7 + j) % 253 for j in range(size))
        conn.send_bytes(msg)
        back = conn.recv_bytes()
        if back != msg:
            sys.exit(f"message {i} of {size} bytes came back as {len(back)} different bytes")
        print(f"ok {i} {size}")
