"""Atomic file writes: a reader (or a rerun after a crash) never sees half a file.

Temporaries are named ``.refinery-tmp-*`` so that a rerun cleans only what Refinery itself left
behind, and finished files get the process umask's mode (``mkstemp`` alone would leave them 0600).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

TMP_PREFIX = ".refinery-tmp-"


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once at import, before any worker thread starts (os.umask can only be read by setting it).
UMASK = _read_umask()


def public_mode(path: Path) -> None:
    """Give a file made by ``mkstemp`` the mode an ordinary ``open`` would: 0666 less the umask."""
    os.chmod(path, 0o666 & ~UMASK)


def temp_path(path: Path) -> Path:
    """A fresh, uniquely named temporary file beside ``path`` (its folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    public_mode(Path(tmp))
    return Path(tmp)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place."""
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
