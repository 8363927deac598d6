"""Atomic file and folder writes: a reader (or a resumed sweep) sees the old content or the new,
never a half-written file, whenever the writer is killed."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def _umask() -> int:
    """The process's umask, read where the kernel reports it (no window in which it is changed)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _file_mode() -> int:
    return 0o666 & ~_umask()  # what open() would have given the file


def _dir_mode() -> int:
    return 0o777 & ~_umask()  # what mkdir() would have given the folder (mkdtemp gives 0700)


def atomic_write(path: Path, write: Callable[[Path], None], *, sync: bool = False) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it into place
    (`sync`: flush it to disk first, so the rename never exposes an empty file after a crash)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    os.close(fd)
    try:
        os.chmod(tmp, _file_mode())
        write(Path(tmp))
        if sync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_replace_dir(folder: Path, fill: Callable[[Path], None]) -> None:
    """Call `fill(tmp)` on a temporary folder beside `folder`, then swap it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        os.chmod(tmp, _dir_mode())
        fill(tmp)
        old = None
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
        try:
            os.replace(tmp, folder)
        except BaseException:
            if old is not None:
                os.replace(old, folder)  # put the previous content back
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
