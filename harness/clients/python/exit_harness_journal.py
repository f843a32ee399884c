"""Journal client for exit-harness: lets a Python program tell the harness what it did.

Stdlib only, Python 3.8+, Linux/Unix. Copy this one file next to your program, or put its
folder on ``sys.path``.

The line protocol
=================

The harness names a file in the environment variable ``EXIT_HARNESS_JOURNAL`` and creates it
(empty) before the child starts. The child appends one JSON object per event, one line each:

* the file is opened once, ``O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW``;
* every line is written with exactly **one** ``write(2)`` and is shorter than 4096 bytes, newline
  included, so lines from many processes (forked children, several processes sharing one
  journal) never interleave;
* a line is never split: if it would be too long, its longest strings (and the tails of its
  longest lists) are cut until it fits, and it gains ``"truncated": true``.

Every line carries four fields written by the client (an event cannot set them):

======== ======= =========================================================================
field    type    meaning
======== ======= =========================================================================
pid      integer the writing process, ``os.getpid()`` at write time (right after a fork)
seq      integer per-process counter from 0; a forked child continues from its parent's value
t_us     integer microseconds of ``CLOCK_MONOTONIC`` (system-wide), comparable across processes
kind     string  the event kind
======== ======= =========================================================================

The kinds the harness's oracles understand:

=============== ============================ ===============================================
kind            fields                       meaning
=============== ============================ ===============================================
save            file, optional extras        a save of ``file`` (absolute path) committed
save_failed     file, error                  a save of ``file`` was attempted and failed
committed       file, keys (list of strings) the keys this process's save put in ``file``
registry        len, live                    an exit-hook registry's size vs. live handles
marker          name                         a named point in the program ("ready", ...)
=============== ============================ ===============================================

Any other kind, with any JSON fields, is kept and quoted in the harness's evidence.

Journal a save **after** it is on disk (after the ``os.replace``), once per save: the harness
counts the saves a second, independent way (it watches the folder) and fails the run when the
two counts disagree.

Guarantees of this module
=========================

* Every function is a no-op (returning ``False``) when ``EXIT_HARNESS_JOURNAL`` is unset or empty.
* Nothing here raises an ``Exception`` or prints: every failure (file missing, disk full, a value
  ``json`` cannot encode, a short write) makes the call return ``False``. ``KeyboardInterrupt``
  and ``SystemExit`` are not swallowed.
* Safe in ``atexit`` hooks, in ``__del__``, during interpreter shutdown and in a forked child:
  every module it needs is imported when this module is imported (no lazy import, which fails
  once ``sys.meta_path`` is gone: pytorch/TensorRT #4359), the functions hold what they use in
  closures (so they keep working after CPython has set this module's globals to ``None``), and
  they take no locks.
* The file is opened lazily, on the first event (``EXIT_HARNESS_JOURNAL`` is read then, once),
  and kept open. Today's harness lets the child
  create the journal, so when the open fails with ``ENOENT`` the client retries once with
  ``O_CREAT`` (mode ``0o600``); once the harness creates the file before the child starts, that
  fallback never runs.
* Paths are written as absolute strings (``os.path.abspath``); text that is not valid UTF-8
  (undecodable file names) is written with U+FFFD in its place, like Rust's ``to_string_lossy``.

Example::

    import exit_harness_journal as journal

    os.replace(tmp, path)
    journal.save(path, entries=len(cache), trigger="atexit")
"""

import errno
import itertools
import json
import os
import time

__all__ = ["JOURNAL_ENV", "MAX_LINE", "record", "save", "save_failed", "committed", "marker", "registry"]

#: The environment variable naming the journal file.
JOURNAL_ENV = "EXIT_HARNESS_JOURNAL"

#: Every line, newline included, is shorter than this many bytes.
MAX_LINE = 4096


def _make():
    """Builds the public functions. Everything they use is bound here, in their closures."""
    os_ = os
    json_ = json
    environ = os.environ
    getpid = os.getpid
    write = os.write
    os_open = os.open
    close = os.close
    abspath = os.path.abspath
    fspath = os.fspath
    fsdecode = os.fsdecode
    clock_gettime = time.clock_gettime
    monotonic = time.CLOCK_MONOTONIC
    enoent = errno.ENOENT
    # `next()` on a count is atomic under the GIL: a counter shared by threads, without a lock,
    # and copied into a forked child, which continues from the parent's value.
    seq_counter = itertools.count()
    flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    o_creat = os.O_CREAT
    reserved = frozenset(("pid", "seq", "t_us", "kind"))
    max_line = MAX_LINE
    max_name = 256
    # [fd or None, whether the open was attempted]
    state = [None, False]

    def fd():
        if state[1]:
            return state[0]
        path = environ.get(JOURNAL_ENV, "")
        opened = None
        if path:
            try:
                opened = os_open(path, flags)
            except OSError as e:
                if e.errno == enoent:
                    try:
                        opened = os_open(path, flags | o_creat, 0o600)
                    except OSError:
                        opened = None
        if state[1]:
            # Another thread opened it meanwhile: keep the first descriptor.
            if opened is not None:
                try:
                    close(opened)
                except OSError:
                    pass
            return state[0]
        state[0] = opened
        state[1] = True
        return opened

    def clean_str(s):
        # Lone surrogates (undecodable file names) become U+FFFD, as Rust's to_string_lossy does.
        try:
            b = s.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            b = s.encode("utf-8", "surrogatepass")
        return b.decode("utf-8", "replace")

    def cut_str(s, max_bytes):
        b = s.encode("utf-8")
        if len(b) <= max_bytes:
            return s
        return b[:max_bytes].decode("utf-8", "ignore")

    def clean(v):
        # Only what JSON can hold; anything else becomes its str().
        if v is None or isinstance(v, (bool, int)):
            return v
        if isinstance(v, float):
            return v if v == v and v not in (float("inf"), float("-inf")) else str(v)
        if isinstance(v, str):
            return clean_str(v)
        if isinstance(v, bytes):
            return clean_str(fsdecode(v))
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {clean_str(str(k)): clean(x) for k, x in v.items()}
        if isinstance(v, os_.PathLike):
            return clean_str(fsdecode(fspath(v)))
        return clean_str(str(v))

    def weight(v):
        if isinstance(v, str):
            return len(v.encode("utf-8"))
        if isinstance(v, list):
            return sum(weight(x) for x in v) + len(v)
        if isinstance(v, dict):
            return sum(len(k.encode("utf-8")) + weight(x) for k, x in v.items())
        return 0

    def shrink(container, key):
        """Halves container[key] (or the largest thing inside it); False when nothing is left."""
        v = container[key]
        if isinstance(v, str):
            if not v:
                return False
            container[key] = cut_str(v, len(v.encode("utf-8")) // 2)
            return True
        if isinstance(v, list):
            if len(v) > 1:
                del v[len(v) // 2:]
                return True
            if v:
                if not shrink(v, 0):
                    v.pop()
                return True
            return False
        if isinstance(v, dict):
            return shrink_largest(v)
        return False

    def shrink_largest(fields):
        if not fields:
            return False
        key = max(fields, key=lambda k: weight(fields[k]))
        return shrink(fields, key)

    def render(kind, fields, pid, seq, t_us):
        truncated = False
        while True:
            obj = {"pid": pid, "seq": seq, "t_us": t_us, "kind": kind}
            if truncated:
                obj["truncated"] = True
            for k, v in fields.items():
                obj[cut_str(k, max_name)] = v
            line = (json_.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n").encode(
                "utf-8"
            )
            if len(line) < max_line or not shrink_largest(fields):
                return line
            truncated = True

    def record(kind, **fields):
        """Appends one event of `kind` with `fields` (JSON values) to the journal.

        Returns True when the whole line reached the file, False otherwise (no journal, an
        error, a short write). Never raises an Exception, never prints. The fields `pid`,
        `seq`, `t_us` and `kind` are the client's own and are ignored here.
        """
        try:
            out = fd()
            if out is None:
                return False
            kind_s = cut_str(clean_str(str(kind)), max_name)
            body = {}
            for k, v in fields.items():
                k = clean_str(str(k))
                if k not in reserved:
                    body[k] = clean(v)
            seq = next(seq_counter)
            ts = clock_gettime(monotonic)
            line = render(kind_s, body, getpid(), seq, int(ts * 1_000_000))
            # One write(2): never retried, since a second write could interleave with another
            # process's line.
            return write(out, line) == len(line)
        except Exception:
            return False

    def path_str(path):
        p = fspath(path)
        if isinstance(p, bytes):
            p = fsdecode(p)
        return abspath(p)

    def save(path, **fields):
        """A committed save of `path` (kind `save`; `path` is written absolute)."""
        try:
            return record("save", **dict(fields, file=path_str(path)))
        except Exception:
            return False

    def save_failed(path, error):
        """A failed save of `path` (kind `save_failed`); `error` is written as str(error)."""
        try:
            return record("save_failed", file=path_str(path), error=str(error))
        except Exception:
            return False

    def committed(path, keys):
        """The keys this process's save put in `path` (kind `committed`)."""
        try:
            return record("committed", file=path_str(path), keys=[str(k) for k in keys])
        except Exception:
            return False

    def marker(name):
        """A named point in the program (kind `marker`)."""
        try:
            return record("marker", name=str(name))
        except Exception:
            return False

    def registry(len, live):  # noqa: A002 -- the protocol's field name
        """A sample of an exit-hook registry: `len` entries while `live` handles exist."""
        try:
            return record("registry", len=int(len), live=int(live))
        except Exception:
            return False

    return record, save, save_failed, committed, marker, registry


record, save, save_failed, committed, marker, registry = _make()
del _make
