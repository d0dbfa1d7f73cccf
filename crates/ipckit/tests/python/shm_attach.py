"""Attach to an existing shared-memory region by name, write to it, exit.

usage: shm_attach.py NAME TEXT [--keep]

With --keep the region is kept from Python's resource tracker, which otherwise
unlinks (deletes) at exit every region the process attached to (Python < 3.13,
and 3.13+ unless track=False): on 3.13+ by track=False, before by unregistering
the name from the tracker right after attaching. Prints "wrote".
"""
import sys
from multiprocessing import shared_memory

name, text, keep = sys.argv[1], sys.argv[2].encode(), "--keep" in sys.argv[3:]
if keep and sys.version_info >= (3, 13):
    shm = shared_memory.SharedMemory(name=name, track=False)
else:
    shm = shared_memory.SharedMemory(name=name)
    if keep:
        from multiprocessing import resource_tracker
        # The tracker registered the name as "/NAME" (shm._name) on attach.
        resource_tracker.unregister(shm._name, "shared_memory")
shm.buf[: len(text)] = text
shm.close()
print("wrote", flush=True)
