"""Writing files so that nothing is ever half-written: a temporary file beside the target,
fsynced, then renamed over it. A full disk or a folder that cannot be written is one
WriteError naming the file, and the file that was there is unchanged.

Every file cnnlab writes goes through `atomic_file` (or `write_text`, `save_figure`,
`append_text`).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import CnnlabError, WriteError

FULL = 1 << 20  # less free space than this after a failed write: the disk was full


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename a finished temporary file over `path`, with the permissions a newly created file
    would have (temporary files are private, 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < FULL
    except OSError:
        return False


def write_problem(error: BaseException, full: bool = False) -> str | None:
    """Why a write failed, in words, when the cause is the place and not the data: a full disk, a
    read-only or forbidden folder; None for anything else. Libraries such as torch.save report a
    full disk in their own words, so a writer that knows the disk filled up says so (`full`)."""
    code = getattr(error, "errno", None)
    if code is None and f"(os error {errno.ENOSPC})" in str(error):  # safetensors: an io::Error in words
        code = errno.ENOSPC
    if code in (errno.ENOSPC, errno.EDQUOT) or full:
        return "no space left on the device"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return os.strerror(code).lower()
    if code == errno.EISDIR:
        return "a folder of that name is in the way"
    if code == errno.ENOTDIR:
        return "a file is in the way of its folder"
    if code == errno.ENAMETOOLONG:
        return "its name is too long"
    return None


def failed_write(path: Path, error: OSError) -> WriteError:
    """The WriteError for an OSError that a plain write into `path` raised."""
    return write_error(path, write_problem(error) or error.strerror.lower())


def write_error(path: Path, problem: str, advice: str | None = None) -> WriteError:
    """The one-line error for a file not written; `.path` and `.problem` say which and why."""
    advice = advice or (
        "free some space or write elsewhere (nothing already there was changed)"
        if "space" in problem
        else "write elsewhere"
    )
    error = WriteError(f"{path}: not written, {problem}; {advice}")
    error.path, error.problem = Path(path), problem
    return error


@contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = ".part"):
    """A temporary file name beside `path` to write to: when the block ends, the file is fsynced
    and renamed over `path` (`publish`); if it raises, the temporary file is removed. A kill at
    any moment leaves either the old file or the new one, never half of one. A full disk or a
    folder that cannot be written is a WriteError naming `path`."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="tmp", suffix=suffix)
    except OSError as e:
        raise failed_write(path, e) from None
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        publish(tmp, path)
    except Exception as e:
        full = _nearly_full(path.parent)  # measured while the partial file still takes its space
        Path(tmp).unlink(missing_ok=True)
        problem = write_problem(e, full)
        if problem and not isinstance(e, WriteError):
            raise write_error(path, problem) from None
        raise
    except BaseException:  # Ctrl-C, SIGTERM: nothing half-written stays behind
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)


def write_json(path: str | os.PathLike, obj, indent: int = 2) -> None:
    """Write `obj` as JSON, atomically."""
    write_text(path, json.dumps(obj, indent=indent))


def save_figure(fig, path: str | os.PathLike, dpi: int) -> Path:
    """Write a matplotlib figure atomically (PNG unless the name says otherwise), then close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_file(path, path.suffix or ".png") as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)
    return path


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no window): imported when a picture is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def append_text(path: Path, text: str) -> None:
    """Append to a log file (a line per epoch); a full disk is a WriteError naming the file."""
    try:
        with open(path, "a") as f:
            f.write(text)
    except OSError as e:
        raise failed_write(path, e) from None


def check_output(path: str | os.PathLike, overwrite: bool = False, flag: str = "-o") -> Path:
    """`path` as a file about to be written, checked before any work: a name (not empty), in a
    folder that exists, not a folder itself, and not a file already there unless `overwrite`."""
    if not str(path).strip():
        raise CnnlabError(f"{flag} {str(path)!r} is empty; give a file name")
    path = Path(path)
    if not path.parent.is_dir():
        raise CnnlabError(f"{path.parent}: no such directory for {path.name}")
    if path.is_dir():
        raise CnnlabError(f"{path}: a folder of that name is in the way; choose another file name")
    if path.exists() and not overwrite:
        raise CnnlabError(f"{path} already exists; give --overwrite to replace it, or choose another name")
    return path
