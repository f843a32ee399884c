"""A program that saves a cache once (temp file + rename) and tells the harness's journal.

Usage: python3 journaled_save.py PATH [--renames N]

Used by harness/tests/journal_clients.rs to check the Python journal client against the black
box. With ``--renames N`` (N > 1) it renames N times but journals one save: a lying journal,
which the two-observer SaveCount oracle must catch.
"""

import os
import sys

# The client ships with the harness: harness/clients/python, relative to this script.
sys.path.insert(
    0,
    os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "harness", "clients", "python"),
)

import exit_harness_journal as journal  # noqa: E402


def save(path, keys):
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write("valid\n")
        for key in keys:
            f.write(f"{key}\n")
    os.replace(tmp, path)


def main():
    path = sys.argv[1]
    renames = 1
    if len(sys.argv) > 3 and sys.argv[2] == "--renames":
        renames = int(sys.argv[3])
    keys = ["gemm", "softmax"]
    journal.marker("ready")
    for _ in range(renames):
        save(path, keys)
    journal.save(path, entries=len(keys), trigger="main")
    journal.committed(path, keys)


if __name__ == "__main__":
    main()
