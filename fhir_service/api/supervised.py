"""A serving process of ``fhir-service serve --workers N`` ends with its supervisor.

uvicorn's multiprocess supervisor starts the serving processes; if the supervisor is
killed outright (SIGKILL, an out-of-memory kill) they would live on as orphans, still
holding the listening socket and running their jobs, where an operator expects the
service to be gone and its jobs to be taken over by another replica after their
heartbeats stop. On Linux each serving process asks the kernel for SIGKILL when its
parent dies (``prctl(PR_SET_PDEATHSIG)``, https://man7.org/linux/man-pages/man2/prctl.2.html),
so it dies with the supervisor as a single process would.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def end_with_supervisor() -> None:
    """Die (SIGKILL) when the parent process dies; at once if it is already gone."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        return
    if parent == 1 or os.getppid() != parent:  # the supervisor died before the call
        os.kill(os.getpid(), signal.SIGKILL)
