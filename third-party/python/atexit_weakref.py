"""FIXED: the design of pytorch/TensorRT PR #4362 (atexit + weakref, one flag, unregister).

Usage: python3 atexit_weakref.py PATH [PATH ...]

The same caches, held the same way as in del_autosave.py, with the same ``save()`` (lazy imports
included). What changes is when the autosave runs:

* ``__init__`` registers an atexit hook that holds only a ``weakref`` to the cache (a module-level
  function + ``functools.partial``: a bound method would keep the cache alive). atexit hooks run
  before module teardown, so the lazy imports still resolve.
* ``_autosave_if_enabled`` flips one flag (``autosave_on_del``) off *before* saving, so whichever
  of ``__del__`` and the atexit hook runs first saves and the other does nothing.
* ``__del__`` unregisters its atexit token, so the atexit registry holds only live caches.
* ``_atexit_token = None`` is the first statement of ``__init__``: ``__del__`` can read it even
  when ``__init__`` raised half-way.
* nothing on the exit path raises or prints.

Each cache is saved exactly once, at exit; stderr stays empty.
"""

import atexit
import functools
import os
import sys
import weakref


def _autosave_at_exit(cache_ref):
    # A module-level function: the partial holds the weakref and nothing else.
    cache = cache_ref()
    if cache is not None:
        cache._autosave_if_enabled()


class KernelCache:
    """A persistent cache of compiled kernels, saved as JSON by temp file + rename."""

    def __init__(self, path, autosave=True):
        self._atexit_token = None  # first: partial-init defence for __del__
        self.autosave_on_del = False
        self.path = os.path.abspath(path)
        self.entries = {}
        self.dirty = False
        if autosave:
            self.autosave_on_del = True
            self._atexit_token = functools.partial(_autosave_at_exit, weakref.ref(self))
            atexit.register(self._atexit_token)

    def add(self, key, value):
        self.entries[key] = value
        self.dirty = True

    def save(self):
        # Identical to del_autosave.py, lazy imports included: they resolve in an atexit hook.
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

    def _autosave_if_enabled(self):
        # One flag, flipped before the save: the first caller wins, the second no-ops.
        if not self.autosave_on_del:
            return
        self.autosave_on_del = False
        if not self.dirty:
            return  # a clean cache never writes
        try:
            self.save()
        except Exception:
            # A real library would log this (logging is configured by the application); the
            # exit path itself must not raise.
            pass

    def __del__(self):
        try:
            token, self._atexit_token = self._atexit_token, None
            if token is not None:
                atexit.unregister(token)
            self._autosave_if_enabled()
        except Exception:
            pass


CACHES = []
for number, path in enumerate(sys.argv[1:]):
    cache = KernelCache(path)
    cache.add(f"gemm_{number}", "// ptx for gemm")
    cache.add(f"softmax_{number}", "// ptx for softmax")
    CACHES.append(cache)
del cache

# A cache that dies mid-program is collected normally (the hook's weakref goes dead), saves
# nothing since it is clean, and leaves nothing in the atexit registry.
KernelCache(sys.argv[1] if len(sys.argv) > 1 else "unused.bin")

# ... the program serves requests, then main returns with the caches still alive.
