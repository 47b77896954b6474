"""The files a user removed from a library in the chat page without deleting them: a list kept beside
the generations, so the next build of the same folders leaves them out."""
from __future__ import annotations

import json
import os
from pathlib import Path


EXCLUDED = "excluded.json"


def read_excluded(index_dir: Path) -> set[str]:
    """Absolute paths of files a user removed from the index (in the chat page) without deleting them."""
    try:
        return set(json.loads((Path(index_dir) / EXCLUDED).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return set()


def write_excluded(index_dir: Path, paths: set[str]) -> None:
    """Replace the removal list atomically (the caller holds the BuildLock)."""
    index_dir = Path(index_dir)
    tmp = index_dir / f"{EXCLUDED}.tmp"
    tmp.write_text(json.dumps(sorted(paths), indent=1), encoding="utf-8")
    os.replace(tmp, index_dir / EXCLUDED)
