"""One build at a time per index directory (a file lock, released by the OS if the build dies)."""
from __future__ import annotations

from pathlib import Path

from rag.errors import IndexLocked


LOCK = ".lock"


class BuildLock:
    """An exclusive lock on an index directory for one build.

    Raises:
        IndexLocked: another build holds it and ``timeout`` ran out (0 = do not wait).
    """

    def __init__(self, index_dir: Path, timeout: float = 0.0):
        from filelock import FileLock

        index_dir.mkdir(parents=True, exist_ok=True)
        self.index_dir = index_dir
        self._lock = FileLock(str(index_dir / LOCK), timeout=timeout)

    def __enter__(self):
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            raise IndexLocked(str(self.index_dir)) from None
        return self

    def __exit__(self, *exc):
        self._lock.release()
