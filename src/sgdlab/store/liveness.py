"""Is a ``running`` run still running? Each run records the process that writes it (pid,
host name and, on Linux, the process's start time, so that a reused pid is not mistaken for
it); a run whose process is gone is *stale*: killed (``kill -9``, a crash, a power cut) or
stopped before it could mark itself failed.

The answer is only known on the host that wrote the run; elsewhere (a store on a shared
disk) and for runs of stores older than schema 3 it is unknown (``None``).
"""

from __future__ import annotations

import os
import socket
from functools import cache
from typing import Any

__all__ = ["process_identity", "stale"]


@cache
def _host() -> str:
    return socket.gethostname()


def _start_token(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), else ``None``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after "pid (comm)": state is field 3
    return fields[19] if len(fields) > 19 else None


def process_identity() -> dict[str, Any]:
    """``pid``, ``host`` and ``process_start`` of this process, stored with a run."""
    pid = os.getpid()
    return {"pid": pid, "host": _host(), "process_start": _start_token(pid)}


def _alive(pid: int) -> bool | None:
    if os.name != "posix":
        return None  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return None
    return True


def stale(row: dict[str, Any]) -> bool | None:
    """For a ``runs`` row: ``True`` when it is ``running`` but its process is gone, ``False``
    when it is not running or its process is alive, ``None`` when that cannot be told."""
    if row.get("status") != "running":
        return False
    pid, host = row.get("pid"), row.get("host")
    if pid is None or host is None or host != _host():
        return None
    alive = _alive(int(pid))
    if alive is None:
        return None
    if not alive:
        return True
    recorded, current = row.get("process_start"), _start_token(int(pid))
    return bool(recorded and current and recorded != current)  # the pid was reused
