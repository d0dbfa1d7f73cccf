"""The Python 3.12 authkey handshake of multiprocessing.connection, written out
by hand with the hmac module so that a Python 3.11 can play a 3.12 peer.

The rules (CPython 3.12 Lib/multiprocessing/connection.py): the challenge is
b'#CHALLENGE#' + b'{sha256}' + 40 random bytes; the answer is b'{sha256}' +
HMAC-SHA256(key, everything after #CHALLENGE#, the prefix included); a 20- or
16-byte message is the legacy HMAC-MD5 form without a prefix.
"""
import hmac
import os
from multiprocessing.connection import AuthenticationError

CHALLENGE = b"#CHALLENGE#"
WELCOME = b"#WELCOME#"
FAILURE = b"#FAILURE#"


def _name_and_payload(msg):
    if len(msg) in (16, 20):
        return "", msg
    if msg.startswith(b"{"):
        end = msg.find(b"}", 1, 10)
        if end > 0:
            return msg[1:end].decode("ascii"), msg[end + 1:]
    raise AuthenticationError(f"no digest prefix in {msg!r}")


def deliver_challenge(conn, key, strict=False):
    """strict: accept only a {sha256} answer (not a legacy HMAC-MD5 one)."""
    msg = b"{sha256}" + os.urandom(40)
    conn.send_bytes(CHALLENGE + msg)
    name, mac = _name_and_payload(conn.recv_bytes(256))
    if strict and name != "sha256":
        conn.send_bytes(FAILURE)
        raise AuthenticationError(f"expected a {{sha256}} answer, got {name or 'legacy md5'!r}")
    expected = hmac.new(key, msg, name or "md5").digest()
    if not hmac.compare_digest(expected, mac):
        conn.send_bytes(FAILURE)
        raise AuthenticationError("digest received was wrong")
    conn.send_bytes(WELCOME)


def answer_challenge(conn, key):
    frame = conn.recv_bytes(256)
    if not frame.startswith(CHALLENGE):
        raise AuthenticationError(f"expected a challenge, got {frame!r}")
    msg = frame[len(CHALLENGE):]
    name, _ = _name_and_payload(msg)
    if name:
        conn.send_bytes(b"{" + name.encode() + b"}" + hmac.new(key, msg, name).digest())
    else:
        conn.send_bytes(hmac.new(key, msg, "md5").digest())
    if conn.recv_bytes(256) != WELCOME:
        raise AuthenticationError("digest sent was rejected")
