"""Paths -> list[Document]: finds the articles under the given paths and reads each with the reader
of its format (one module each: text, markdown, html, pdf).

Every reader returns a Document whose block offsets index ``Document.text`` exactly: for .txt and
.md the decoded file, for .html and .pdf the text extracted from it. A file no reader can use is a
warning naming it, never an error: the rest is indexed.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection

from rag.errors import NoDocuments, PathNotFound
from rag.ingest import html, markdown, pdf, text
from rag.ingest.text import (  # noqa: F401 (re-exported: the line classifier's public helpers)
    Unreadable, date_line, decode, is_boilerplate, is_heading, iso_date, parse, quotable, title_of)
from rag.types import BODY, Document

READERS = {suffix: module for module in (text, markdown, html, pdf) for suffix in module.SUFFIXES}
SUFFIXES = tuple(READERS)
KINDS = ".txt, .md, .html or .pdf"  # how messages name the readable formats
MAX_FILE_BYTES = 20 * 1024 * 1024  # ~3 million words: far beyond an article; split larger files
# Bump when any reader makes a different Document of the same file: an index records it, and files
# read by another version are read again rather than taken over unread (see FileStat).
READER_VERSION = 1
RACY_NS = 2_000_000_000  # a file changed this close to when it was seen may change again unseen


@dataclass(frozen=True)
class FileStat:
    """What an index remembers of a file it read, so the next build can skip reading it: size and
    modification time, when that was seen, and by which reader version.

    ``unchanged`` trusts size and mtime, as make and git do; like git it distrusts a file modified
    within RACY_NS of being seen (a second write in the same clock tick would keep both the same).
    """

    size: int
    mtime_ns: int
    seen_ns: int
    reader: int = READER_VERSION

    @classmethod
    def of(cls, path: Path) -> "FileStat":
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns, time.time_ns(), READER_VERSION)

    def unchanged(self, now: "FileStat") -> bool:
        return (self.reader == now.reader == READER_VERSION and (self.size, self.mtime_ns) == (now.size, now.mtime_ns)
                and self.mtime_ns + RACY_NS < self.seen_ns)


@dataclass
class IngestReport:
    documents: list[Document] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, FileStat] = field(default_factory=dict)  # doc_id -> its file, as seen before reading
    reused: int = 0  # documents taken over unread (see ingest's ``known``)


def readable(name: str) -> bool:
    """Whether a file name has the suffix of a format some reader reads."""
    return name.lower().endswith(SUFFIXES)


def discover(paths: list[str | Path]) -> tuple[list[tuple[str, Path]], list[str]]:
    """(doc_id, file) pairs under ``paths``, sorted; doc_id is the path relative to the given folder.

    Raises:
        PathNotFound: a given path does not exist.
    """
    found: dict[str, Path] = {}
    warnings: list[str] = []
    for root in map(Path, paths):
        if not root.exists():
            raise PathNotFound(str(root))
        if root.is_file():
            candidates = [(root.name, root)]
        else:
            candidates = []
            # os.walk without followlinks cannot loop on a symlinked directory cycle.
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                folder = Path(dirpath)
                # Made once per folder: a library of many thousand files pays this at every build.
                prefix = folder.relative_to(root).as_posix() + "/" if folder != root else ""
                for name in sorted(filenames):
                    if not name.startswith("."):
                        candidates.append((prefix + name, folder / name))
        for doc_id, p in candidates:
            if not readable(p.name):
                if root.is_file():
                    warnings.append(f"{p}: skipped, not a {KINDS} file")
                continue
            # Two folders holding the same relative path: the later one is named after its folder
            # (and numbered if even that is taken), so neither file is silently dropped.
            name, n = doc_id, 1
            while doc_id in found and found[doc_id].resolve() != p.resolve():
                n += 1
                doc_id = f"{root.name}/{name}" if n == 2 else f"{root.name}-{n - 1}/{name}"
            found[doc_id] = p
    return sorted(found.items()), warnings


def read_document(path: Path, doc_id: str) -> tuple[Document, list[str]]:
    """One document, read by the reader of its suffix (unknown suffixes as plain text), and the
    warnings it raised.

    Raises:
        OSError: the file cannot be read, or is over MAX_FILE_BYTES.
        UnicodeError: a text file that looks binary.
        Unreadable: a file its reader cannot make an article of (the message says why).
    """
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise OSError(f"larger than {MAX_FILE_BYTES // 2**20} MB; split it into smaller files")
    data = path.read_bytes()
    reader = READERS.get(path.suffix.lower(), text)
    return reader.read(data, doc_id, str(path))


def ingest(paths: list[str | Path], keep: Collection[str] = (),
           known: Callable[[str, Path, FileStat], Document | None] | None = None) -> IngestReport:
    """Every readable article under ``paths``; unreadable files become warnings, not errors.

    Of files with the same text only one is indexed: the one whose doc_id is in ``keep`` (the
    documents already indexed), else the first by name, so a new copy never displaces the original.
    ``known(doc_id, path, stat)`` may give the Document an earlier read made of an unchanged file:
    then the file is not read again (parsing is most of the cost of re-indexing a large library).
    Such a document may lack its text and blocks, when the caller takes them over itself.

    Raises:
        PathNotFound: a given path does not exist.
        NoDocuments: nothing readable was found.
    """
    files, warnings = discover(paths)
    report = IngestReport(warnings=warnings)
    seen: dict[str, str] = {}  # sha256 -> doc_id: the same text under two names would be cited twice
    keep = set(keep)
    for doc_id, path in sorted(files, key=lambda f: f[0] not in keep):  # stable: by name within each group
        try:
            stat = FileStat.of(path)  # before reading: a change made while reading shows next time
            doc = known(doc_id, path, stat) if known else None
            taken = doc is not None
            if taken:
                warns = []
                report.reused += 1
            else:
                doc, warns = read_document(path, doc_id)
        except (OSError, UnicodeError, Unreadable) as e:
            if isinstance(e, FileNotFoundError):
                reason = "it disappeared while indexing"
            elif isinstance(e, OSError) and e.strerror:
                reason = e.strerror
            else:
                reason = str(e)
            report.warnings.append(f"{path}: skipped, {reason}")
            continue
        report.warnings.extend(warns)
        # A document known() gave had article text when it was read, and may come without its blocks.
        if not taken and not any(b.kind == BODY for b in doc.blocks):
            report.warnings.append(f"{path}: skipped, no article text in it")
            continue
        if doc.sha256 in seen:
            report.warnings.append(f"{path}: skipped, same text as {seen[doc.sha256]}")
            continue
        seen[doc.sha256] = doc_id
        report.documents.append(doc)
        report.stats[doc_id] = stat
    report.documents.sort(key=lambda d: d.doc_id)
    if not report.documents:
        raise NoDocuments([str(p) for p in paths])
    return report


