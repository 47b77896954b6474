"""The chat page's library: list, add (upload) and remove documents, re-indexing incrementally.

Uploads are written only inside the library folder, under a sanitised name; the index then gets the
library folder as one more source. Removing a library file deletes that copy; removing a document from
another source only keeps it out of the index (the user's file is never deleted).
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from rag.errors import DocumentNotFound, RagError
from rag.ingest import decode

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
ALLOWED = (".txt", ".md")


class UploadRejected(RagError):
    pass


@dataclass(frozen=True)
class Row:
    source: str
    title: str
    date: str
    kb: float
    passages: int


def rows(index) -> list[Row]:
    counts = index.doc_chunk_counts()
    return [Row(d.doc_id, d.title or "", d.date or "", round(len(d.text.encode("utf-8")) / 1024, 1), int(n))
            for d, n in zip(index.docs, counts)]


def safe_name(name: str) -> str:
    """A file name with no directory part, no leading dot and only [A-Za-z0-9._-]."""
    base = re.split(r"[\\/]", name)[-1]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip("._") or "upload"
    stem, dot, ext = base.rpartition(".")
    return base if dot and stem else f"{base}.txt"


def check_upload(path: Path, name: str) -> None:
    """Raises UploadRejected unless ``path`` is a text article of an allowed type and size."""
    if not name.lower().endswith(ALLOWED):
        raise UploadRejected(f"{name}: only .txt and .md files can be added")
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise UploadRejected(f"{name}: {size / 2**20:.1f} MB is over the 10 MB limit")
    if size == 0:
        raise UploadRejected(f"{name}: the file is empty")
    try:
        decode(path.read_bytes())
    except UnicodeError:
        raise UploadRejected(f"{name}: this is not a text file") from None


def place(library: Path, upload: Path, name: str) -> Path:
    """Copy a checked upload into ``library`` under a fresh, sanitised name; returns the new path."""
    library.mkdir(parents=True, exist_ok=True)
    name = safe_name(name)
    stem, _, ext = name.rpartition(".")
    target = library / name
    n = 2
    while target.exists():
        target = library / f"{stem}-{n}.{ext}"
        n += 1
    if target.resolve().parent != library.resolve():
        raise UploadRejected(f"{name}: not a valid file name")
    shutil.copyfile(upload, target)
    return target


class Library:
    def __init__(self, index_dir: Path, library_dir: Path, embedder=None):
        self.index_dir = Path(index_dir)
        self.library_dir = Path(library_dir)
        self.embedder = embedder

    def sources(self) -> list[str]:
        from rag.index import read_manifest

        _, manifest = read_manifest(self.index_dir)
        sources = list(manifest.get("sources") or [])
        self.library_dir.mkdir(parents=True, exist_ok=True)
        lib = str(self.library_dir.resolve())
        return sources if lib in sources else [*sources, lib]

    def add(self, uploads: list[tuple[Path, str]]) -> tuple[list[str], list[str]]:
        """(names added, one message per rejected file). Re-indexes once for all accepted files."""
        from rag.pipeline import build

        added, problems, placed = [], [], []
        for path, name in uploads:
            try:
                check_upload(path, name)
                placed.append(place(self.library_dir, path, name))
                added.append(placed[-1].name)
            except UploadRejected as e:
                problems.append(str(e))
        if placed:
            try:
                build(self.sources(), self.index_dir, embedder=self.embedder, lock_timeout=300)
            except Exception:
                for p in placed:  # the index did not change: do not leave files it does not hold
                    p.unlink(missing_ok=True)
                raise
        return added, problems

    def remove(self, index, doc_id: str) -> str:
        """Take ``doc_id`` out of the index; returns a message for the user."""
        from rag.pipeline import build

        doc = index.document(doc_id) if isinstance(doc_id, str) else None
        if doc is None:
            raise DocumentNotFound(str(doc_id))
        if len(index.docs) == 1:
            raise RagError("This is the last document; add another before removing it")
        path = Path(doc.path).resolve() if doc.path else None
        if path is not None and path.parent == self.library_dir.resolve():
            path.unlink(missing_ok=True)
            build(self.sources(), self.index_dir, embedder=self.embedder, lock_timeout=300)
            return f"Removed {doc_id} and deleted its copy in the library."
        build(self.sources(), self.index_dir, embedder=self.embedder, lock_timeout=300, remove=[str(path)] if path else [])
        return f"Removed {doc_id} from the index (the file itself is untouched)."
