"""The chat page's library: list, add (upload) and remove documents, re-indexing incrementally.

Uploads are written only inside the library folder, under a sanitised name; the index then gets the
library folder as one more source. Removing a library file deletes that copy; removing a document from
another source only keeps it out of the index (the user's file is never deleted).

Every change ends in one of two states: done (an added file is indexed and listed, a removed one is
gone from both), or refused with a message and the library folder and the index as they were.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rag.errors import DocumentNotFound, RagError
from rag.pipeline import FORMATS, Unreadable, read_article

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
ALLOWED = tuple(FORMATS)  # every format `rag index` reads: .txt, .md, .markdown, .html, .htm, .pdf
KINDS = ".txt, .md, .html and .pdf"
TRASH_PREFIX = ".removing-"  # a file being removed waits under this hidden name, which discover() skips
REMOVED_DIR = ".removed"  # removed uploads are kept here (hidden: never indexed) so the page can restore them


class UploadRejected(RagError):
    pass


class UpdateFailed(RagError):
    """Indexing or reloading failed; the library folder and the index were put back as they were."""


@dataclass(frozen=True)
class Row:
    source: str
    title: str
    date: str
    kb: float
    passages: int


def rows(store) -> list[Row]:
    return [Row(d.doc_id, d.title or "", d.date or "", round(d.bytes / 1024, 1), d.passages) for d in store.catalog()]


@dataclass(frozen=True)
class Removed:
    """A removed document the page can bring back: ``key`` says where it is kept."""

    key: str  # "library:<file name in REMOVED_DIR>" or "source:<absolute path of an excluded file>"
    label: str


def _title_of(path: Path) -> str | None:
    try:
        return read_article(path, path.name).title
    except Exception:  # a label only: an unreadable file is still listed by its name
        return None


def _fresh_path(folder: Path, name: str) -> Path:
    stem, _, ext = name.rpartition(".")
    target, n = folder / name, 2
    while target.exists() or target.with_name(TRASH_PREFIX + target.name).exists():
        target = folder / f"{stem}-{n}.{ext}"
        n += 1
    return target


def safe_name(name: str) -> str:
    """A file name with no directory part, no leading dot and only [A-Za-z0-9._-]."""
    base = re.split(r"[\\/]", name)[-1]
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip("._") or "upload"
    stem, dot, ext = base.rpartition(".")
    return base if dot and stem else f"{base}.txt"


def check_upload(path: Path, name: str) -> str:
    """The text of ``path`` as the index will hold it (decoded, or extracted from HTML and PDF).
    Raises UploadRejected unless it is an article of an allowed type and size with something besides
    blank space in it."""
    if not name.lower().endswith(ALLOWED):
        raise UploadRejected(f"{name}: only {KINDS} files can be added")
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise UploadRejected(f"{name}: {size / 2**20:.1f} MB is over the 10 MB limit")
    if size == 0:
        raise UploadRejected(f"{name}: the file is empty")
    try:  # the reader's verdict now, rather than "skipped by the indexer" after a build
        text = read_article(path, name).text
    except Unreadable as e:
        raise UploadRejected(f"{name}: {e}") from None
    except UnicodeError:
        raise UploadRejected(f"{name}: this is not a text file") from None
    if not text.strip():
        raise UploadRejected(f"{name}: the file has no text in it, only blank space")
    return text


def place(library: Path, upload: Path, name: str) -> Path:
    """Copy a checked upload into ``library`` under a fresh, sanitised name; returns the new path.

    Raises:
        UploadRejected: the name is unusable, or the copy failed (no partial copy is left).
    """
    library.mkdir(parents=True, exist_ok=True)
    name = safe_name(name)
    target = _fresh_path(library, name)
    if target.resolve().parent != library.resolve():
        raise UploadRejected(f"{name}: not a valid file name")
    try:
        shutil.copyfile(upload, target)
    except OSError as e:
        target.unlink(missing_ok=True)
        raise UploadRejected(f"{name}: could not be saved in the library ({e.strerror or e})") from None
    return target


def skip_reason(warnings: list[str], path: Path) -> str:
    """Why the build left ``path`` out, from its report's warnings ("<path>: skipped, <reason>")."""
    prefixes = {f"{path}: ", f"{path.resolve()}: "}
    mine = [w[len(p):] for w in warnings for p in prefixes if w.startswith(p)]
    for reason in [w for w in mine if w.startswith("skipped")] or mine[-1:]:
        return reason.removeprefix("skipped").lstrip(", ") or reason
    return "the index did not take it in"


def _describe(error: BaseException) -> str:
    text = str(error) if isinstance(error, RagError) else f"{type(error).__name__}: {error}".rstrip(": ")
    return " ".join(text.split())


class Library:
    def __init__(self, index_dir: Path, library_dir: Path, embedder=None, store: str | None = None):
        self.index_dir = Path(index_dir)
        self.store = store  # None: the local index at index_dir; else a Milvus store spec
        self.library_dir = Path(library_dir)
        self.embedder = embedder
        # One change at a time: a failed change is undone before the next one starts.
        self._lock = threading.Lock()
        self._recover()

    def _recover(self) -> None:
        """Finish removals a killed server left half done: a file set aside while the index still
        lists it goes back in place; one the index no longer lists is deleted."""
        if not self.library_dir.is_dir():
            return
        try:
            listed = {str(Path(v["path"]).resolve()) for v in self._indexed().values() if v.get("path")}
        except (RagError, OSError):
            return
        for trash in self.library_dir.glob(TRASH_PREFIX + "*"):
            original = trash.with_name(trash.name[len(TRASH_PREFIX):])
            if str(original.resolve()) in listed and not original.exists():
                os.replace(trash, original)
            else:
                self._keep_removed(trash, original.name)

    def _keep_removed(self, trash: Path, name: str) -> None:
        """Move a removed upload into the removed folder, where the page can restore it from."""
        kept = self.library_dir / REMOVED_DIR
        kept.mkdir(parents=True, exist_ok=True)
        os.replace(trash, _fresh_path(kept, name))

    def removed(self) -> list[Removed]:
        """What the page can restore: removed uploads, then removed files of the indexed folders that
        still exist, newest removal first within each."""
        out = []
        kept = self.library_dir / REMOVED_DIR
        if kept.is_dir():
            for f in sorted(kept.iterdir(), key=lambda f: f.stat().st_mtime, reverse=True):
                if f.is_file():
                    title = _title_of(f)
                    out.append(Removed(f"library:{f.name}", f"{title} — {f.name}" if title else f.name))
        from rag.pipeline import library_state

        for path in sorted(library_state(self.index_dir, self.store)["excluded"]):
            p = Path(path)
            if p.is_file():
                title = _title_of(p)
                out.append(Removed(f"source:{path}", f"{title} — {path}" if title else path))
        return out

    def restore(self, key: str, after: Callable[[], None] | None = None) -> str:
        """Bring a removed document back into the index; returns a message for the user.

        Raises:
            RagError: ``key`` is not one of ``removed()``.
            UpdateFailed: the build or ``after`` failed; the document stays removed.
        """
        with self._lock:
            kind, _, what = key.partition(":")
            if key not in {r.key for r in self.removed()}:
                raise RagError("That document is no longer among the removed ones; reload the page to see the list")
            if kind == "source":
                try:
                    self._build(unexclude=[what])
                    if after is not None:
                        after()
                except Exception as e:
                    raise self._failed(f"restore {Path(what).name}", "indexing", e, self._rebuild(remove=[what]),
                                       "It is still removed") from None
                return f"Restored {Path(what).name}."
            kept = self.library_dir / REMOVED_DIR / what
            target = _fresh_path(self.library_dir, what)
            os.replace(kept, target)
            try:
                self._build()
                if after is not None:
                    after()
            except Exception as e:
                os.replace(target, kept)
                raise self._failed(f"restore {what}", "indexing", e, self._restore(), "It is still removed") from None
            return f"Restored {target.name}."

    def sources(self) -> list[str]:
        from rag.pipeline import library_state

        sources = library_state(self.index_dir, self.store)["sources"]
        self.library_dir.mkdir(parents=True, exist_ok=True)
        lib = str(self.library_dir.resolve())
        return sources if lib in sources else [*sources, lib]

    def _indexed(self) -> dict[str, dict]:
        """doc_id -> {"sha256", "path"} of what the index holds now."""
        from rag.pipeline import library_state

        return library_state(self.index_dir, self.store)["documents"]

    def _build(self, **kwargs):
        from rag.pipeline import build

        return build(self.sources(), self.index_dir, embedder=self.embedder, lock_timeout=300, store=self.store, **kwargs)

    def _restore(self) -> BaseException | None:
        """Re-index what the folders hold now (the change undone); the error if that failed too."""
        return self._rebuild()

    def _rebuild(self, **kwargs) -> BaseException | None:
        try:
            self._build(**kwargs)
        except Exception as e:
            return e
        return None

    def _failed(self, action: str, step: str, error: BaseException, restore_error: BaseException | None,
                kept: str) -> UpdateFailed:
        message = f"Could not {action}: {step} failed ({_describe(error)})."
        if restore_error is None:
            return UpdateFailed(f"{message} {kept}; try again.")
        # Said to someone using the page: what they can do there, not a command to run.
        return UpdateFailed(f"{message} Putting the index back failed too ({_describe(restore_error)}): answers may "
                            "be out of date until whoever runs this server re-indexes the library.")

    def add(self, uploads: list[tuple[Path, str]], store=None,
            after: Callable[[], None] | None = None) -> tuple[list[str], list[str]]:
        """(doc_ids added, one message per file not added). Re-indexes once for all accepted files.

        A file whose text is already indexed (the same bytes, or the same text as a document of
        ``store``) or repeats an earlier file of ``uploads`` is refused before it is copied. After the
        build, only files the index really holds count as added; the others are deleted, with the
        build's reason. ``after`` runs once the index holds the uploads (the page reloads there).

        Raises:
            UpdateFailed: the build or ``after`` failed; the uploads were deleted and the index rebuilt
                without them.
        """
        with self._lock:
            problems: list[str] = []
            placed: list[tuple[Path, str]] = []
            known = {v.get("sha256"): doc_id for doc_id, v in self._indexed().items()}
            # Same text in other bytes (another encoding): only documents of the same length are read.
            lengths: dict[int, list[str]] = {}
            for info in (store.catalog() if store is not None else []):
                lengths.setdefault(info.chars, []).append(info.doc_id)

            def same_text(text: str) -> str | None:
                return next((d for d in lengths.get(len(text), []) if store.document(d).text == text), None)

            batch_digests: dict[str, str] = {}  # of the uploads accepted so far -> their names
            batch_texts: dict[str, str] = {}
            for path, name in uploads:
                try:
                    text = check_upload(path, name)
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                    # Ingest keeps one file per sha256: a copy could displace the indexed original.
                    same = known.get(digest) or same_text(text)
                    if same is not None:
                        raise UploadRejected(f"{name}: same text as {same}, which is already in the library")
                    earlier = batch_digests.get(digest) or batch_texts.get(text)
                    if earlier is not None:
                        raise UploadRejected(f"{name}: same text as {earlier}, added just before it")
                    placed.append((place(self.library_dir, path, name), name))
                    batch_digests[digest] = batch_texts[text] = name
                except UploadRejected as e:
                    problems.append(str(e))
            if not placed:
                return [], problems
            names = ", ".join(name for _, name in placed)
            try:
                report = self._build()
                by_path = {str(Path(v["path"]).resolve()): doc_id for doc_id, v in self._indexed().items() if v.get("path")}
            except Exception as e:
                raise self._undo_add(placed, names, "indexing", e) from None
            added, kept = [], []
            for target, name in placed:
                doc_id = by_path.get(str(target.resolve()))
                if doc_id is None:
                    target.unlink(missing_ok=True)  # the index does not hold it: the page could not list or remove it
                    problems.append(f"{name}: not added, {skip_reason(report.warnings, target)}")
                else:
                    added.append(doc_id)
                    kept.append((target, name))
            if added and after is not None:
                try:
                    after()
                except Exception as e:
                    raise self._undo_add(kept, ", ".join(n for _, n in kept), "reloading the index", e) from None
            return added, problems

    def _undo_add(self, placed: list[tuple[Path, str]], names: str, step: str, error: BaseException) -> UpdateFailed:
        for target, _ in placed:
            target.unlink(missing_ok=True)
        return self._failed(f"add {names}", step, error, self._restore(), "Nothing was added")

    def remove(self, store, doc_id: str, after: Callable[[], None] | None = None) -> str:
        """Take ``doc_id`` out of the index; returns a message for the user. ``after`` runs once the
        index no longer holds it (the page reloads there).

        Raises:
            DocumentNotFound, RagError: not in the index, or the last document.
            UpdateFailed: the build or ``after`` failed; the document is back in the index (and its
                library copy back in place).
        """
        with self._lock:
            doc = store.document(doc_id) if isinstance(doc_id, str) else None
            if doc is None:
                raise DocumentNotFound(str(doc_id))
            if len(store.catalog()) == 1:
                raise RagError("This is the last document; add another before removing it")
            path = Path(doc.path).resolve() if doc.path else None
            step = "indexing"
            if path is not None and path.parent == self.library_dir.resolve():
                # Moved aside, not deleted, until the index no longer holds it: a failure puts it back.
                trash = path.with_name(TRASH_PREFIX + path.name)
                moved = path.exists()
                if moved:
                    os.replace(path, trash)
                try:
                    self._build()
                    step = "reloading the index"
                    if after is not None:
                        after()
                except Exception as e:
                    if moved:
                        os.replace(trash, path)
                    raise self._failed(f"remove {doc_id}", step, e, self._restore(),
                                       f"{doc_id} is still in the library") from None
                self._keep_removed(trash, path.name)
                return f"Removed {doc_id}. It can be restored under Removed documents."
            try:
                self._build(remove=[str(path)] if path else [])
                step = "reloading the index"
                if after is not None:
                    after()
            except Exception as e:
                raise self._failed(f"remove {doc_id}", step, e, self._unexclude(path),
                                   f"{doc_id} is still in the library") from None
            return f"Removed {doc_id} (its file is untouched). It can be restored under Removed documents."

    def _unexclude(self, path: Path | None) -> BaseException | None:
        """Undo a removal of a file outside the library: take it off the exclusion list, re-index."""
        return self._rebuild(unexclude=[str(path)] if path is not None else [])
