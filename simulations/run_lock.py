"""The lock of a run directory: one escalade run writes into a directory at a time.

While a run writes, ``out/.lock`` holds a JSON record of its holder (PID,
host, PID namespace, process start time). A second run refuses with
:class:`RunDirError`; a lock left by a killed run (its process gone from this
host, or its PID reused) is removed with a warning, so that the run resumes.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from escalade.design.errors import EscaladeError
from escalade.simulations.atomic import write_error

__all__ = ["RunDirError", "hold_lock"]

log = logging.getLogger(__name__)


class RunDirError(EscaladeError):
    """A run directory cannot be used (locked, or holds a run of other inputs)."""


def _proc_start(pid: int) -> str | None:
    """Start time of process ``pid`` (clock ticks since boot, Linux), to tell a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return stat.rsplit(")", 1)[1].split()[19]
    except IndexError:  # pragma: no cover - unexpected /proc format
        return None


def _pid_namespace() -> str | None:
    """This process's PID namespace (Linux): PIDs of another namespace (container) cannot be checked."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OverflowError, ValueError):
        return False
    return True


def _lock_is_stale(info: dict[str, Any]) -> str | None:
    """Why a lock is stale (its process is gone from this host), or None if it may be live."""
    pid, host = info.get("pid"), info.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or host != socket.gethostname():
        return None  # another host (or an unreadable lock): it cannot be checked from here
    if info.get("pid_ns") not in (None, _pid_namespace()):
        return None  # another container on this host: its PIDs are not ours
    if not _pid_alive(pid):
        return f"process {pid} on {host} is no longer running"
    start = info.get("proc_start")
    if start is not None and _proc_start(pid) not in (None, start):
        return f"process {pid} on {host} has ended (its PID now belongs to another process)"
    return None


def _read_lock(lock: Path) -> tuple[bytes, dict[str, Any]]:
    try:
        raw = lock.read_bytes()
    except FileNotFoundError:
        return b"", {}
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return raw, {}
    return raw, info if isinstance(info, dict) else {}


@contextmanager
def hold_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` for the duration of a run.

    The lock is created atomically with its content (a JSON record of the
    PID, host, PID namespace and process start time of its holder, hard-linked
    into place) and removed when the run ends. A lock left by a run that was killed
    (``SIGKILL``, power loss) is stale when its host is this host and its
    process is gone (or its PID now belongs to another process): it is then
    removed with a warning. A lock of a live process, of another host or
    container, or in an unknown format makes the run refuse.
    """
    lock = out / ".lock"
    me = {"pid": os.getpid(), "host": socket.gethostname(), "proc_start": _proc_start(os.getpid()),
          "pid_ns": _pid_namespace(), "started": _dt.datetime.now(_dt.timezone.utc).isoformat(),
          "escalade_lock": 1}
    body = json.dumps(me).encode()
    for _attempt in range(5):
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-lock-", dir=out)
        except OSError as exc:  # read-only, no permission, full disk: nothing of the run can be written here
            raise write_error(lock, exc) from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
            try:
                os.link(tmp, lock)  # atomic: fails if a lock exists; never a lock without content
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links: exclusive create, then write
                lfd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                with os.fdopen(lfd, "wb") as fh:
                    fh.write(body)
            break
        except FileExistsError:
            pass
        except OSError as exc:
            raise write_error(lock, exc) from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        raw, info = _read_lock(lock)
        if not raw and not lock.exists():
            continue  # released meanwhile
        why = _lock_is_stale(info)
        if why is None:
            who = (f"process {info.get('pid')} on {info.get('host')}"
                   + (f", since {info['started']}" if "started" in info else "") if info else "unknown holder")
            raise RunDirError(f"{out}: another escalade run is writing here ({who}; lock file {lock}); wait "
                              f"for it to finish, or delete {lock} if that run is no longer running")
        log.warning("%s: removing a stale lock (%s); finished work units are kept and the run resumes", out, why)
        _remove_if_unchanged(lock, raw)
    else:
        raise RunDirError(f"{out}: could not take the lock {lock} (it keeps changing); is another run starting?")
    try:
        yield
    finally:
        raw, info = _read_lock(lock)
        if info.get("pid") == me["pid"] and info.get("host") == me["host"]:
            lock.unlink(missing_ok=True)


def _remove_if_unchanged(lock: Path, raw: bytes) -> None:
    """Remove ``lock`` if it still holds ``raw`` (not a fresh lock another run took meanwhile)."""
    aside = lock.with_name(f".lock.stale-{os.getpid()}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return
    try:
        if aside.read_bytes() != raw:  # someone else's fresh lock: put it back
            try:
                os.link(aside, lock)
            except FileExistsError:  # pragma: no cover - a third run took it meanwhile
                pass
    finally:
        aside.unlink(missing_ok=True)
