"""A multiprocessing.connection Listener serving JSON-RPC `add` and `echo`.

usage: mp_listener.py SOCKET_PATH AUTHKEY [--modern]

Prints "ready" once listening, serves one client until it closes, prints
"served N" and exits 0. On an AuthenticationError it prints it and exits 3.
With --modern it listens without an authkey and runs the Python 3.12
handshake by hand (mp312.py), answering only in the {sha256} form.
"""
import json
import sys
from multiprocessing.connection import AuthenticationError, Listener

import mp312

path, key = sys.argv[1], sys.argv[2].encode()
modern = "--modern" in sys.argv[3:]
listener = Listener(path, family="AF_UNIX", authkey=None if modern else key)
print("ready", flush=True)
try:
    conn = listener.accept()
    if modern:
        mp312.deliver_challenge(conn, key, strict=True)
        mp312.answer_challenge(conn, key)
except AuthenticationError as e:
    print(f"AuthenticationError: {e}", flush=True)
    sys.exit(3)

served = 0
while True:
    try:
        req = json.loads(conn.recv_bytes())
    except EOFError:
        break
    if req["method"] == "add":
        reply = {"jsonrpc": "2.0", "result": sum(req["params"]), "id": req["id"]}
    elif req["method"] == "echo":
        reply = {"jsonrpc": "2.0", "result": req.get("params"), "id": req["id"]}
    else:
        reply = {"jsonrpc": "2.0", "id": req["id"],
                 "error": {"code": -32601, "message": "no such method"}}
    conn.send_bytes(json.dumps(reply).encode())
    served += 1
print(f"served {served}", flush=True)
listener.close()
