"""Write files atomically (a temporary file beside each, then a rename under a lock on their
folders), never over a special file, and sweep the scratch files that killed runs left."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import stat
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: renames are not locked
    fcntl = None


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a file atomically: a temporary file beside it, then os.replace."""
    written, errors = write_texts({path: text})
    if errors:
        raise errors[0][1]
    return written[0]


def write_texts(texts: dict) -> tuple[list[Path], list[tuple[Path, OSError]]]:
    """Write several files as one: every temporary file first, then every rename, the renames
    under a lock on their folders so that two runs never leave a mix of each other's files.

    A path that is a symlink is written through to its target; a target that exists and is not
    a regular file (a FIFO, a device, a folder) is refused and left untouched. Returns the
    paths written and, for each path that could not be, its error; nothing is left behind.
    """
    staged, errors, written = [], [], []
    try:
        for path, text in texts.items():
            try:
                staged.append((Path(path), *_stage(Path(path), text)))
            except OSError as exc:
                errors.append((Path(path), exc))
        with _locked({target.parent for _, target, _ in staged}):
            for path, target, tmp in staged:
                try:
                    _commit(target, tmp)
                    written.append(path)
                except OSError as exc:
                    errors.append((path, exc))
    finally:
        for _, _, tmp in staged:
            Path(tmp).unlink(missing_ok=True)
    return written, errors


def same_file(output, inputs) -> str | None:
    """Return the input that the output would overwrite (the same file by any path), if any."""
    out = os.path.realpath(output)
    for path in inputs:
        if os.path.realpath(path) == out or _samefile(path, output):
            return str(path)
    return None


def _samefile(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def writable_target(path: str | os.PathLike) -> Path:
    """Return where a write to the path lands (a symlink's target); raise OSError when what is
    there is not a regular file, so that it is never replaced."""
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # realpath leaves a loop as it is: never replace the link
            raise OSError(errno.ELOOP, "a symlink loop, not a regular file; left untouched"
                          ) from None
        return target  # nothing there to protect; writing says what is wrong with the path
    if not stat.S_ISREG(mode):
        raise OSError(errno.EEXIST, f"{_kind(mode)}, not a regular file; left untouched")
    return target


def _kind(mode: int) -> str:
    """Return what a non-regular file is, in words."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def _stage(path: Path, text: str) -> tuple[Path, str]:
    """Check the path's target and write the text to a temporary file beside it."""
    target = writable_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep(target.parent, f".{target.name}.", ".tmp")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{scratch_tag()}.", suffix=".tmp",
                               dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if isinstance(text, str):
                f.write(text)
            else:  # an iterable of chunks (a merge, written as it is read)
                f.writelines(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result is not
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target, tmp


def scratch_tag() -> str:
    """Return HOST-PID, named into a temporary file or folder (PREFIX + HOST-PID + '.' + …):
    it says which process may still be using it (`sweep`)."""
    return f"{_HOST}-{os.getpid()}"


_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:64] or "host"


def sweep(folder: Path, prefix: str, suffix: str = "") -> None:
    """Remove the temporary files and folders (PREFIX + HOST-PID + '.' … + SUFFIX) that this
    user's processes on this host left in a folder when they were killed (a SIGKILL runs no
    clean-up): only those whose process is gone; anything else is left as it is."""
    if not hasattr(os, "getuid"):  # (Windows: os.kill would end the process it asks about)
        return
    try:
        entries = [e for e in os.scandir(folder)
                   if e.name.startswith(prefix) and e.name.endswith(suffix)]
    except OSError:
        return
    for entry in entries:
        host, _, pid = entry.name[len(prefix):].partition(".")[0].rpartition("-")
        if host != _HOST or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if info.st_uid != os.getuid():
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(entry.path)
            elif stat.S_ISREG(info.st_mode):
                os.unlink(entry.path)
        except OSError:  # another run swept it first, or it is not ours to remove
            continue


def _alive(pid: int) -> bool:
    """Say whether a process of this host has the pid (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _commit(target: Path, tmp: str) -> None:
    """Rename a staged file into place unless its target turned into something else since."""
    writable_target(target)
    os.replace(tmp, target)


@contextlib.contextmanager
def _locked(folders: set[Path]):
    """Hold an exclusive lock on each folder (sorted, so two writers cannot deadlock); the
    lock is the folder's own, so no lock file is left behind. A no-op where flock is absent."""
    with contextlib.ExitStack() as stack:
        for folder in sorted(folders):
            if fcntl is None:
                break
            fd = os.open(folder, os.O_RDONLY)
            stack.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

