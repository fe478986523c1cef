"""Files that are complete or absent: write to a temporary file beside the target, then rename.

A reader (a resumed run, ``escalade report``) never sees half a file: the
rename is atomic on one file system, and a failure or a kill before it leaves
only a ``.tmp-*`` file, which the next run into the directory removes.

A write that the machine refuses (full disk, read-only file system, no
permission, a path through a file or into ``/proc``) raises
:class:`WriteError`: an ``OSError`` whose message is one line naming the
target path, the system's reason and the fix, so that the command line shows
that line and no traceback.
"""

from __future__ import annotations

import errno as _errno
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

from escalade.scenarios.errors import EscaladeError

__all__ = ["replacing", "atomic_write", "atomic_write_all", "make_dir", "WriteError", "write_error"]

#: What to do about each ``errno`` (the default: check the path and the disk).
_FIXES: dict[int, str] = {
    _errno.ENOSPC: "the disk is full; free some space and run the same command again (finished work is kept)",
    _errno.EDQUOT: "the disk quota is used up; free some space and run the same command again "
                   "(finished work is kept)",
    _errno.EROFS: "the file system is read-only; choose a location on a writable disk",
    _errno.EACCES: "permission denied; choose a directory you can write to, or change its permissions",
    _errno.EPERM: "operation not permitted; choose a directory you can write to, or change its permissions",
    _errno.ENOTDIR: "a part of the path is a file, not a directory; choose another path",
    _errno.ENOENT: "its folder does not exist or cannot hold files (e.g. under /proc); choose another path",
    _errno.EISDIR: "it is a directory; give a file path, or remove the directory",
    _errno.EEXIST: "something else exists at that path; choose another path",
    _errno.ENAMETOOLONG: "the name is too long for the file system; choose a shorter path",
    _errno.EMFILE: "too many open files; raise the limit (ulimit -n) and run the same command again",
}


class WriteError(EscaladeError, OSError):
    """A file or directory cannot be written; the message names the path, the reason and the fix.

    It is an ``OSError`` (``errno``, ``strerror`` and ``filename`` as the
    system reported them, ``filename`` being the target, not a temporary
    file), so code that handles ``OSError`` keeps working.

    Parameters
    ----------
    path
        The file or directory that could not be written or created.
    errno, strerror
        The system's error number and text (``None`` when not from the system).
    fix
        What to do, phrased as a remedy.
    action
        What failed, e.g. ``"cannot be written"``.
    """

    def __init__(self, path: str | Path, errno: int | None, strerror: str | None, fix: str,
                 action: str = "cannot be written") -> None:
        OSError.__init__(self, errno, strerror, str(path))
        self.path = Path(path)
        self.fix = fix
        self.action = action
        why = f" ({strerror})" if strerror else ""
        self.message = f"{path}: {action}{why}: {fix}"

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple:  # travels intact from a worker process to its parent
        return (type(self), (str(self.path), self.errno, self.strerror, self.fix, self.action))


_ERRNO_IN_TEXT = re.compile(r"errno (\d+)", re.IGNORECASE)
#: Free space below which a write that failed without an error number is taken for a full disk.
_FULL_BYTES = 1 << 20


def _errno_of(exc: OSError, path: Path) -> int | None:
    """The error number of ``exc``; libraries that lose it (NumPy's short write "5000 requested and 4080
    written", Arrow's "[errno 28]" in its text) get it back from the text or from the free space left."""
    if exc.errno is not None:
        return exc.errno
    found = _ERRNO_IN_TEXT.search(str(exc))
    if found:
        return int(found.group(1))
    try:
        st = os.statvfs(path.parent)
    except (OSError, AttributeError):  # no statvfs (Windows) or no such folder
        return None
    return _errno.ENOSPC if st.f_bavail * st.f_frsize < _FULL_BYTES else None


def write_error(path: str | Path, exc: OSError, *, action: str = "cannot be written") -> WriteError:
    """The :class:`WriteError` for ``exc`` raised while writing ``path`` (unchanged if it is one)."""
    if isinstance(exc, WriteError):
        return exc
    path = Path(path)
    number = _errno_of(exc, path)
    fix = _FIXES.get(number if number is not None else -1,
                     "check the path, the permissions and the free space, or choose another path")
    reason = exc.strerror or str(exc)
    if exc.errno is None and number is not None:
        reason = f"{os.strerror(number)}: {reason}"
    return WriteError(path, number, reason, fix, action)


@contextmanager
def replacing(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it when the block succeeds and removed when not.

    Raises
    ------
    WriteError
        When the system refuses the temporary file, a write to it inside the
        block, or the rename (the temporary file is removed).
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        err = write_error(path, exc) if isinstance(exc, OSError) else None  # (the free space before the clean-up)
        Path(tmp).unlink(missing_ok=True)
        if err is not None:
            raise err from None
        raise


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file and a rename."""
    with replacing(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def atomic_write_all(outputs: Mapping[Path, bytes | str]) -> list[Path]:
    """Write several files all or none: every temporary file first, then the renames.

    A failure while writing (a full disk after the first file) leaves every
    target as it was; only the renames, which take no space, come after.
    """
    paths = [Path(p) for p in outputs]
    with ExitStack() as stack:
        for path, data in zip(paths, outputs.values()):
            tmp = stack.enter_context(replacing(path, path.suffix))
            tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return paths


def make_dir(path: str | Path, *, what: str = "output directory") -> bool:
    """Create directory ``path`` (and its parents) if missing; return whether it was created.

    Raises
    ------
    WriteError
        When ``path`` is an existing file, or the system refuses to create it
        (read-only file system, no permission, a parent that is a file, a
        location such as ``/proc`` that cannot hold directories).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise WriteError(path, _errno.ENOTDIR, None, f"give a directory path for the {what} (it is created if "
                         "missing), or move the file away", action="is a file, not a directory")
    if path.is_dir():
        return False
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        if path.is_dir():  # created meanwhile by someone else
            return False
        raise WriteError(path, _errno.EEXIST, None, f"choose another path for the {what}",
                         action="is not a directory") from None
    except OSError as exc:
        raise write_error(path, exc, action=f"cannot create the {what}") from None
    return True
