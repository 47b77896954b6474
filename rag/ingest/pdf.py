"""PDF bytes -> Document: the text layer of each page (pypdf), read by the line classifier of
rag.ingest.text, with ``Document.pages`` giving where each page starts.

``Document.text`` is the pages' extracted text joined by PAGE_BREAK (a line break), with trailing
spaces cut from lines and running headers and footers (a line repeated at the top or bottom of most
pages, page numbers) left out. Offsets index that text, not the file; ``encoding`` says so
(EXTRACTED_PDF). pypdf was chosen over pdfplumber by evals/pdf_extract.py (see evals/README.md):
it keeps columns that are written one after another in reading order, and is ~20x faster.
"""
from __future__ import annotations

import hashlib
import io
import logging
import re
from collections import Counter
from dataclasses import replace

from rag.ingest.text import Unreadable, parse
from rag.types import EXTRACTED_PDF, PAGE_BREAK, Document

SUFFIXES = (".pdf",)

_EDGE = 2  # lines at the top and at the bottom of a page where running headers and footers sit
_PAGE_NUMBER = re.compile(r"[-–—\s]*(page\s+)?\d{1,4}(\s*(/|of)\s*\d{1,4})?[-–—\s]*", re.I)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # NUL, form feeds and the like: never article text
_FILE_NAME = re.compile(r"\.\w{2,4}$|^microsoft (word|powerpoint)", re.I)  # a producer's title that is a file name


def read(data: bytes, doc_id: str, path: str | None = None) -> tuple[Document, list[str]]:
    """The PDF's text as a Document, and warnings (pages without a text layer).

    Raises:
        Unreadable: empty, damaged, encrypted, or without any text layer (a scan).
    """
    if not data.strip():
        raise Unreadable("the file is empty")
    # Imported here: `rag ask` never reads a PDF.
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.CRITICAL)  # it logs each repair of a damaged file; we warn once
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable("it is encrypted with a password; save an unprotected copy and index that")
        raw = [page.extract_text() or "" for page in reader.pages]
        meta = reader.metadata
        meta_title, meta_author = (meta.title, meta.author) if meta else (None, None)
    except Unreadable:
        raise
    except Exception as e:  # pypdf raises many kinds of error on a damaged file
        raise Unreadable(f"not a readable PDF ({_reason(e)})") from None
    if not raw:
        raise Unreadable("not a readable PDF (it has no pages)")
    pages = _drop_running_lines([_page_lines(t) for t in raw])
    blank = [i + 1 for i, lines in enumerate(pages) if not any(ch.isalnum() for line in lines for ch in line)]
    if len(blank) == len(pages):
        raise Unreadable("no text layer (a scanned PDF?): run OCR on it first (e.g. ocrmypdf) and index the result")
    warnings = []
    if blank:
        several = len(blank) > 1
        warnings.append(f"{path}: page{'s' if several else ''} {_ranges(blank)} of {len(pages)} "
                        f"ha{'ve' if several else 's'} no text layer (scanned?); the rest is indexed")
    text, starts = "", []
    for i, lines in enumerate(pages):
        if i:
            text += PAGE_BREAK
        starts.append(len(text))
        text += "\n".join(lines)
    doc = parse(text, doc_id, sha256=hashlib.sha256(data).hexdigest(), path=path, encoding=EXTRACTED_PDF,
                markdown=False)
    title = doc.title or _meta(meta_title, is_title=True)
    return replace(doc, title=title, author=_meta(meta_author), pages=tuple(starts)), warnings


def _reason(error: Exception) -> str:
    text = " ".join(str(error).split())[:120]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _meta(value, is_title: bool = False) -> str | None:
    value = " ".join(str(value).split()) if value else ""
    if not value or (is_title and _FILE_NAME.search(value)):
        return None
    return value


def _page_lines(text: str) -> list[str]:
    """A page's lines, trailing spaces and control characters cut, without leading or trailing blank lines."""
    lines = [_CONTROL.sub(" ", line).rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _drop_running_lines(pages: list[list[str]]) -> list[list[str]]:
    """The pages without their running headers and footers: a line among the first or last _EDGE of
    a page that (digits aside) recurs there on at least half of the pages, two at least, or that is
    only a page number ("7", "Page 7", "7 of 12", "- 7 -")."""
    def key(line: str) -> str:
        return re.sub(r"\d+", "#", " ".join(line.split()).lower())

    def edges(lines: list[str]) -> set[int]:
        return set(range(min(_EDGE, len(lines)))) | set(range(max(0, len(lines) - _EDGE), len(lines)))

    seen = Counter(k for lines in pages for k in {key(lines[i]) for i in edges(lines)})
    running = {k for k, n in seen.items() if k and n >= max(2, (len(pages) + 1) // 2)}
    out = []
    for lines in pages:
        drop = {i for i in edges(lines) if key(lines[i]) in running or _PAGE_NUMBER.fullmatch(lines[i])}
        out.append(_page_lines("\n".join(line for i, line in enumerate(lines) if i not in drop)))
    return out


def _ranges(numbers: list[int]) -> str:
    """"2, 4-6" for [2, 4, 5, 6]."""
    out, start = [], numbers[0]
    for a, b in zip(numbers, numbers[1:] + [None]):
        if b != a + 1:
            out.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return ", ".join(out)
