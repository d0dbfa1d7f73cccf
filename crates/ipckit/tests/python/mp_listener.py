"""multiprocessing.connection.Listener as a peer: prints its address, accepts
one client, replies to each message with the message reversed, until EOF.
The family (AF_INET or AF_UNIX) comes from the first argument."""
import sys
from multiprocessing.connection import Listener

if sys.argv[1] == "AF_UNIX":
    listener = Listener(sys.argv[2], family="AF_UNIX")
else:
    listener = Listener(("127.0.0.1", 0), family="AF_INET")
addr = listener.address
print(addr if isinstance(addr, str) else f"{addr[0]}:{addr[1]}", flush=True)
with listener.accept() as conn:
    n = 0
    while True:
        try:
            msg = conn.recv_bytes()
        except EOFError:
            break
        conn.send_bytes(msg[::-1])
        n += 1
print(f"served {n}", flush=True)
listener.close()
