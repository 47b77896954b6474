"""Paths -> list[Document].

Reads .txt/.md files, decodes them, and classifies every line (title, date, heading, boilerplate,
body) without changing the text: block offsets index ``Document.text`` exactly as decoded.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import date as _date
from pathlib import Path

from rag.errors import NoDocuments, PathNotFound
from rag.types import BODY, BOILERPLATE, DATE, HEADING, TITLE, Block, Document

SUFFIXES = (".txt", ".md", ".markdown")
MAX_FILE_BYTES = 20 * 1024 * 1024  # ~3 million words: far beyond an article; split larger files

_MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_MONTH = r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
_DATE_PATTERNS = (
    (re.compile(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b"), ("y", "m", "d")),
    (re.compile(_MONTH + r"\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b", re.I), ("M", "d", "y")),
    (re.compile(r"\b(\d{1,2})\s+" + _MONTH + r",?\s+(\d{4})\b", re.I), ("d", "M", "y")),
)

# Site furniture: matched against a whole stripped line.
_BOILERPLATE_LINE = re.compile(
    r"^(app|mobile|desktop|menu|home|share|print|email|e-mail|close|search|login|log in|sign in|subscribe|"
    r"advertisement|related( articles| news| stories)?|read more|leave a (comment|reply)|comments?|"
    r"back to top|top|next|previous|more)$",
    re.I,
)
_BOILERPLATE_ANYWHERE = re.compile(
    r"copyright\s*(©|\(c\))|©\s*\d{4}|all rights reserved|website identification code|registration number:|"
    r"without written authorization|about us\s*\|\s*contact us|icp\s*(備|备|license)|"
    r"(follow|like) us on (facebook|twitter|weibo|wechat)",
    re.I,
)
# Photo and video credits: "…. Photo: Chen Tao/GT", "(Xinhua / Xu Qin)", "(Video reporters: …)".
_CAPTION = re.compile(
    r"(\bphoto(graph)?( taken)?\s*(:|by)\s*[^.]{0,60}$|/GT\s*$|\((xinhua|photo|reuters|ap|afp|cfp|vcg|video)[^)]*\)\s*$|"
    r"^\((video|photo|editor|reporter)[^)]*\)$|^(photo|file photo|picture)\s*:)",
    re.I,
)
_TERMINAL = tuple(".!?;:\"'”’)]…。！？")


@dataclass
class IngestReport:
    documents: list[Document] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


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
                for name in sorted(filenames):
                    if name.startswith("."):
                        continue
                    p = Path(dirpath, name)
                    candidates.append((p.relative_to(root).as_posix(), p))
        for doc_id, p in candidates:
            if not p.name.lower().endswith(SUFFIXES):
                if root.is_file():
                    warnings.append(f"{p}: skipped, not a .txt or .md file")
                continue
            if doc_id in found and found[doc_id].resolve() != p.resolve():
                doc_id = f"{root.name}/{doc_id}"
            found[doc_id] = p
    return sorted(found.items()), warnings


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8, UTF-8 with BOM, UTF-16 with BOM, then latin-1.

    Raises:
        UnicodeError: the bytes look binary (NUL bytes outside UTF-16).
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    if b"\x00" in data[:8192]:
        raise UnicodeError("looks like a binary file")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def read_document(path: Path, doc_id: str) -> tuple[Document, list[str]]:
    """One decoded, classified document and the warnings it raised.

    Raises:
        OSError: the file cannot be read.
        UnicodeError: the file looks binary.
    """
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise OSError(f"larger than {MAX_FILE_BYTES // 2**20} MB; split it into smaller files")
    data = path.read_bytes()
    text, encoding = decode(data)
    warnings = []
    if encoding not in ("utf-8", "utf-8-sig"):
        warnings.append(f"{path}: not UTF-8, decoded as {encoding}")
    return parse(text, doc_id, sha256=hashlib.sha256(data).hexdigest(), path=str(path), encoding=encoding), warnings


def ingest(paths: list[str | Path]) -> IngestReport:
    """Every readable article under ``paths``; unreadable files become warnings, not errors.

    Raises:
        PathNotFound: a given path does not exist.
        NoDocuments: nothing readable was found.
    """
    files, warnings = discover(paths)
    report = IngestReport(warnings=warnings)
    seen: dict[str, str] = {}  # sha256 -> doc_id: the same text under two names would be cited twice
    for doc_id, path in files:
        try:
            doc, warns = read_document(path, doc_id)
        except (OSError, UnicodeError) as e:
            if isinstance(e, FileNotFoundError):
                reason = "it disappeared while indexing"
            elif isinstance(e, OSError) and e.strerror:
                reason = e.strerror
            else:
                reason = str(e)
            report.warnings.append(f"{path}: skipped, {reason}")
            continue
        report.warnings.extend(warns)
        if not any(b.kind == BODY for b in doc.blocks):
            report.warnings.append(f"{path}: skipped, no article text in it")
            continue
        if doc.sha256 in seen:
            report.warnings.append(f"{path}: skipped, same text as {seen[doc.sha256]}")
            continue
        seen[doc.sha256] = doc_id
        report.documents.append(doc)
    if not report.documents:
        raise NoDocuments([str(p) for p in paths])
    return report


def parse(text: str, doc_id: str, sha256: str = "", path: str | None = None, encoding: str = "utf-8") -> Document:
    """Classify the lines of ``text`` into blocks; find its title and date."""
    if not sha256:
        sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    blocks: list[Block] = []
    title = date = None
    section = 0
    previous = None
    nonempty = 0
    markdown = doc_id.lower().endswith((".md", ".markdown"))
    pos = 0
    for raw in text.splitlines(keepends=True):
        line_start, pos = pos, pos + len(raw)
        content = raw.rstrip("\r\n")
        stripped = content.strip()
        if not stripped:
            continue
        start = line_start + (len(content) - len(content.lstrip()))
        end = start + len(stripped)
        nonempty += 1
        kind = BODY
        if stripped == previous:
            kind = BOILERPLATE  # a headline repeated on the next line
        elif is_boilerplate(stripped, markdown):
            kind = BOILERPLATE
        elif date is None and nonempty <= 6 and (found := date_line(stripped)):
            kind, date = DATE, found
        elif title is None and not any(b.kind in (BODY, HEADING) for b in blocks) and (t := title_of(stripped, markdown)):
            kind, title = TITLE, t
        elif is_heading(stripped, markdown):
            kind = HEADING
            section += 1
        previous = stripped
        blocks.append(Block(start, end, kind, section))
    return Document(doc_id=doc_id, text=text, sha256=sha256, title=title, date=date, path=path,
                    encoding=encoding, blocks=tuple(blocks))


def is_boilerplate(line: str, markdown: bool = False) -> bool:
    """Site furniture, credits, captions and lone punctuation: never quoted."""
    if _BOILERPLATE_LINE.match(line.strip(" .:|-")) or _BOILERPLATE_ANYWHERE.search(line) or _CAPTION.search(line):
        return True
    if not any(ch.isalnum() for ch in line):
        return True  # ".", "【", "***", "---"
    return markdown and line.startswith(("```", "~~~", "<!--", "!["))


# A photo credit anywhere in a sentence: "… ovens Photo: Jane Doe/GT The harbor …".
_CREDIT = re.compile(r"\b(photo(graph)?|file photo|picture|image)( taken)?\s*(:|by\s+[A-Z])", re.I)


def quotable(sentence: str) -> bool:
    """Whether a sentence may be quoted: not boilerplate, and no credit line run into it."""
    return not (is_boilerplate(sentence) or _CREDIT.search(sentence))


def is_heading(line: str, markdown: bool = False) -> bool:
    """A line that starts a new section: a markdown heading, a short unpunctuated line, or a
    headline with a tag list ("… | Navy | Chinese Fleet")."""
    if markdown and line.startswith("#"):
        return True
    if line.count(" | ") >= 2:
        return True
    return len(line) <= 160 and len(line.split()) <= 20 and not line.endswith(_TERMINAL) and not line.endswith(",")


def title_of(line: str, markdown: bool = False) -> str | None:
    """The title a first line gives, or None if the line reads like body text."""
    if markdown and line.startswith("#"):
        line = line.lstrip("#").strip()
    line = line.split(" | ")[0].strip()
    if not line or len(line) > 200 or len(line.split()) > 30:
        return None
    # Two or more sentences means a paragraph, not a title.
    if re.search(r"[.!?]\s+[A-Z]", line):
        return None
    return line


def date_line(line: str) -> str | None:
    """The ISO date a short dateline carries ("July 4, 2023", "Release time:Apr 13, 2024 21:36 PM")."""
    if len(line) > 80:
        return None
    for pattern, order in _DATE_PATTERNS:
        m = pattern.search(line)
        if not m:
            continue
        rest = (line[: m.start()] + line[m.end():]).split()
        if len(rest) > 6:
            return None
        return iso_date(dict(zip(order, m.groups())))
    return None


def iso_date(parts: dict[str, str]) -> str | None:
    try:
        month = int(parts["m"]) if "m" in parts else _MONTHS[parts["M"][:3].lower()]
        return _date(int(parts["y"]), month, int(parts["d"])).isoformat()
    except (ValueError, KeyError):
        return None
