"""BUGGY on purpose: a cache that autosaves only from ``__del__`` (pytorch/TensorRT #4359).

Usage: python3 del_autosave.py PATH [PATH ...]

One cache per PATH, each held at module level (as an inference server holds its engines until
the interpreter exits), each dirty. Nothing saves them before exit: their ``__del__`` runs during
CPython's interpreter shutdown, after ``sys.meta_path`` has been torn down, and the lazy
``import json`` in ``save()`` (torch_tensorrt's was ``import filelock``) raises::

    Exception ignored in: <function KernelCache.__del__ at 0x...>
    Traceback (most recent call last):
      File ".../del_autosave.py", line ..., in __del__
      File ".../del_autosave.py", line ..., in save
    ImportError: sys.meta_path is None, Python is likely shutting down

once per surviving cache. No save reaches the disk; an old file is left as it was.

The fix is atexit_weakref.py, with the very same ``save()``.
"""

import os
import sys


class KernelCache:
    """A persistent cache of compiled kernels, saved as JSON by temp file + rename."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.entries = {}
        self.dirty = False

    def add(self, key, value):
        self.entries[key] = value
        self.dirty = True

    def save(self):
        # Lazy imports, as in torch_tensorrt's RuntimeCache.save(): harmless mid-program,
        # fatal once the interpreter is shutting down. `json` and `tempfile` are not imported
        # by anything else in this program, so the import machinery is really needed here.
        import json
        import tempfile

        data = json.dumps({"version": 1, "entries": self.entries}, sort_keys=True).encode()
        folder = os.path.dirname(self.path)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".cache-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise
        self.dirty = False

    def __del__(self):
        # The only autosave anchor: runs mid-program when the cache is collected, but for a cache
        # that lives until exit it runs during interpreter shutdown, and the save fails.
        if self.dirty:
            self.save()


CACHES = []
for number, path in enumerate(sys.argv[1:]):
    cache = KernelCache(path)
    cache.add(f"gemm_{number}", "// ptx for gemm")
    cache.add(f"softmax_{number}", "// ptx for softmax")
    CACHES.append(cache)
del cache

# ... the program serves requests, then main returns with the caches still alive.
