"""A multiprocessing.connection Client calling an ipckit RPC server.

usage: mp_client.py SOCKET_PATH AUTHKEY [--modern]

Without --modern the handshake is this Python's own (answer_challenge, then
deliver_challenge). With --modern it connects without an authkey and runs the
Python 3.12 form by hand (mp312.py), so a 3.11 interpreter can play a 3.12 peer.
Prints one JSON line per reply; on an AuthenticationError prints it and exits 3.
"""
import json
import sys
from multiprocessing.connection import AuthenticationError, Client

import mp312

path, key = sys.argv[1], sys.argv[2].encode()
modern = "--modern" in sys.argv[3:]
try:
    if modern:
        conn = Client(path, family="AF_UNIX")
        mp312.answer_challenge(conn, key)
        mp312.deliver_challenge(conn, key, strict=True)
    else:
        conn = Client(path, family="AF_UNIX", authkey=key)
except AuthenticationError as e:
    print(f"AuthenticationError: {e}", flush=True)
    sys.exit(3)


def call(obj):
    conn.send_bytes(json.dumps(obj).encode())
    return json.loads(conn.recv_bytes())


print(json.dumps(call({"jsonrpc": "2.0", "method": "add", "params": [20, 22], "id": 1})))
print(json.dumps(call({"jsonrpc": "2.0", "method": "nope", "id": "two"})))
batch = call([
    {"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": 3},
    {"jsonrpc": "2.0", "method": "add", "params": [5, 5]},
])
print(json.dumps(batch))
conn.close()
