"""Runs a bench or reference script inside its own virtualenv, installing the peer
packages on first use, so that nothing is installed by hand."""

import os
import subprocess
import sys

MARKER = "FUNNEL_IN_VENV"


def reexec_in(venv, packages, env=None):
    """Re-executes the calling script with `venv`'s Python (creating it and installing
    `packages` first if needed); returns at once when already inside."""
    if os.environ.get(MARKER) == venv:
        return
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.check_call([sys.executable, "-m", "venv", venv])
    # Packages installed so far, one per line, so that a venv shared by several scripts
    # gets each script's packages on its first run.
    record = os.path.join(venv, "funnel-packages.txt")
    done = set(open(record).read().split()) if os.path.exists(record) else set()
    missing = [p for p in packages if p not in done]
    if missing:
        subprocess.check_call([python, "-m", "pip", "install", "--quiet", *missing])
        with open(record, "a") as f:
            f.write("".join(p + "\n" for p in missing))
    os.execve(python, [python, *sys.argv], dict(os.environ, **(env or {}), **{MARKER: venv}))
