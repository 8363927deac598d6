"""Preload of the local cluster's worker processes (`distributed` calls `dask_setup` in each).

Ctrl-C reaches every process of the terminal's process group. The client (the `iotsim` process)
handles it: it keeps the finished runs and shuts the cluster down. Workers ignore it, so they
neither print tracebacks nor die before the client has cancelled their runs.
"""

from __future__ import annotations

import signal


def dask_setup(worker) -> None:  # noqa: ARG001 (the hook's signature)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
