"""A save, right or wrong, for the crash explorer's own tests.

Usage: python3 save.py MODE PATH

Writes "new contents\n" to PATH. A crashed save's temp file is removed first (the recovery's
duty). MODE:
  durable    temp file, write, fsync, rename, fsync of the folder
  atomic     temp file, write, fsync, rename (no fsync of the folder)
  no-fsync   temp file, write, rename
  in-place   truncate PATH and write it where it is, in two writes
"""
import os
import sys

mode, path = sys.argv[1], sys.argv[2]
folder = os.path.dirname(path) or "."
tmp = path + ".tmp"
if os.path.exists(tmp):
    os.unlink(tmp)
data = b"new contents\n"
if mode == "in-place":
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data[:4])
    os.write(fd, data[4:])
    os.close(fd)
    sys.exit(0)
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, data)
if mode in ("durable", "atomic"):
    os.fsync(fd)
os.close(fd)
os.rename(tmp, path)
if mode == "durable":
    dfd = os.open(folder, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
