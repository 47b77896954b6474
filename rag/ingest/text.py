"""Plain-text bytes -> Document: decoding, and the line classifier the .txt, .md and .pdf readers share.

Every line is classified (title, date, heading, boilerplate, body) without changing the text: block
offsets index ``Document.text`` exactly as decoded.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date as _date

from rag.types import BODY, BOILERPLATE, DATE, HEADING, TITLE, Block, Document

SUFFIXES = (".txt",)


class Unreadable(ValueError):
    """A file its reader cannot make an article of; the message says why (ingest warns and skips it)."""

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
# A list item: "- x", "* x", "• x", "1. x", "2) x", "a) x".
_WRAPPED_LINE = 40  # characters: a line at least this long that stops mid-sentence may have been wrapped
_WRAP_SLACK = 15  # ... if the next line is not longer than it by more than a long word
_BULLET = re.compile(r"^([-*+•·▪◦‣–—]|\d{1,3}[.)]|[A-Za-z]\))\s+")


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8, UTF-8 with BOM, UTF-16 with BOM, then Windows-1252, then latin-1.

    ``encoding`` is the Python codec that gives back exactly ``text``: citation offsets index
    ``open(path, encoding=encoding, newline="").read()`` (the BOM dropped, line ends kept as written).

    Raises:
        UnicodeError: the bytes look binary (NUL bytes outside UTF-16).
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise UnicodeError("looks like a binary file (a UTF-16 mark, but not UTF-16 text)") from None
    if b"\x00" in data[:8192]:
        raise UnicodeError("looks like a binary file")
    for codec in ("utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8", "cp1252"):
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError:
            continue
    # latin-1 decodes any byte; it is right for the few Western files cp1252 cannot read.
    return data.decode("latin-1"), "latin-1"


def read(data: bytes, doc_id: str, path: str | None = None, markdown: bool = False) -> tuple[Document, list[str]]:
    """A plain-text (or, with ``markdown``, Markdown) file's bytes as a classified Document, and the
    warnings it raised (an encoding other than UTF-8).

    Raises:
        UnicodeError: the bytes look binary.
    """
    text, encoding = decode(data)
    warnings = []
    if encoding not in ("utf-8", "utf-8-sig"):
        name = {"cp1252": "Windows-1252"}.get(encoding, encoding)
        warnings.append(f"{path}: not UTF-8, decoded as {name}")
    doc = parse(text, doc_id, sha256=hashlib.sha256(data).hexdigest(), path=path, encoding=encoding, markdown=markdown)
    return doc, warnings


def parse(text: str, doc_id: str, sha256: str = "", path: str | None = None, encoding: str = "utf-8",
          title: str | None = None, markdown: bool | None = None) -> Document:
    """Classify the lines of ``text`` into blocks; find its title and date.

    A title is taken only where one is marked: a Markdown ``#`` heading or a tagged headline
    ("… | Tag | Tag") as the first line, a short unpunctuated first line set apart by a blank line or
    a dateline, or ``title`` given by the caller (a dataset field). Everything else that is not
    furniture is body text, so a one-line file is indexed. Consecutive body lines are one block when
    a line does not end a sentence (hard-wrapped paragraphs), so a sentence may span lines.
    ``markdown`` None: Markdown when ``doc_id`` ends in .md or .markdown.
    """
    if not sha256:
        sha256 = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    if markdown is None:
        markdown = doc_id.lower().endswith((".md", ".markdown"))
    lines = _lines(text)
    blocks: list[Block] = []
    found_title = found_date = None
    section = 0
    for i, line in enumerate(lines):
        stripped = text[line.start:line.end]
        after = lines[i + 1] if i + 1 < len(lines) else None
        next_text = text[after.start:after.end] if after else None
        previous = text[lines[i - 1].start:lines[i - 1].end] if i else None
        kind = BODY
        if stripped == previous:
            kind = BOILERPLATE  # a headline repeated on the next line
        elif is_boilerplate(stripped, markdown):
            kind = BOILERPLATE
        elif found_date is None and i < 6 and (iso := date_line(stripped)):
            kind, found_date = DATE, iso
        elif found_title is None and not any(b.kind in (BODY, HEADING) for b in blocks) and \
                (t := _marked_title(stripped, markdown, title, lines, i, text, blocks)):
            kind, found_title = TITLE, t
        elif after is not None and is_heading(stripped, markdown, standalone=line.gap_before and (
                after.gap_before or next_text == stripped)):
            kind = HEADING
            section += 1
        last = blocks[-1] if blocks else None
        if kind == BODY and last is not None and last.kind == BODY and not line.gap_before \
                and _continues(text[lines[i - 1].start:lines[i - 1].end], stripped):
            blocks[-1] = Block(last.start, line.end, BODY, last.section)  # a hard-wrapped line continues
            continue
        blocks.append(Block(line.start, line.end, kind, section))
    return Document(doc_id=doc_id, text=text, sha256=sha256, title=found_title, date=found_date, path=path,
                    encoding=encoding, blocks=tuple(blocks))


@dataclass(frozen=True)
class _Line:
    start: int  # of the line stripped of surrounding whitespace
    end: int
    gap_before: bool  # a blank line (or the start of the text) comes before it


# Line breaks as str.splitlines() sees them, so a block never spans what Python calls a line break.
def _lines(text: str) -> list[_Line]:
    out: list[_Line] = []
    gap = True
    pos = 0
    for raw in text.splitlines(keepends=True):
        line_start, pos = pos, pos + len(raw)
        content = raw.rstrip("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
        stripped = content.strip()
        if not stripped:
            gap = True
            continue
        start = line_start + (len(content) - len(content.lstrip()))
        out.append(_Line(start, start + len(stripped), gap))
        gap = False
    return out


def _marked_title(line: str, markdown: bool, given: str | None, lines: list[_Line], i: int, text: str,
                  blocks: list[Block]) -> str | None:
    """The title ``line`` gives if the document marks it as one (see ``parse``), else None."""
    if given is not None:
        return given if line == given.strip() else None
    if i + 1 >= len(lines):
        return None  # nothing follows: the line is the article itself
    if (markdown and line.startswith("#")) or line.count(" | ") >= 2:
        return title_of(line, markdown)
    if markdown or _BULLET.match(line) or line.endswith((".", ",", ";", ":")) or len(line.split()) > 20:
        return None
    after = lines[i + 1]
    next_text = text[after.start:after.end]
    # Set apart by a blank line or a dateline, or simply not continued by the next line (which then
    # starts a sentence of its own): "Glacier cave\nA glacier cave is a cave formed …".
    set_apart = after.gap_before or date_line(next_text) is not None or not _continues(line, next_text) or (
        bool(blocks) and blocks[-1].kind == DATE and not next_text[:1].islower())
    return title_of(line) if set_apart else None


def _continues(line: str, next_line: str) -> bool:
    """Whether ``next_line`` carries on the sentence ``line`` leaves open (a hard-wrapped paragraph):
    the line stops without final punctuation and the next one starts in lower case, or both are as
    long as wrapped lines are (near the wrap width, the next no longer than it). A short line, or
    one followed by a much longer one (a title above an unwrapped paragraph), stands on its own."""
    if line.endswith(_TERMINAL) or _BULLET.match(next_line):
        return False
    return next_line[:1].islower() or _WRAPPED_LINE <= len(line) >= len(next_line) - _WRAP_SLACK


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


def is_heading(line: str, markdown: bool = False, standalone: bool = True) -> bool:
    """A line that starts a new section: a Markdown heading, a headline with a tag list ("… | Navy |
    Chinese Fleet"), or in plain text a short capitalised line without final punctuation that stands
    alone between blank lines. Bullets and unpunctuated lines inside a paragraph are body text."""
    if markdown and line.startswith("#"):
        return True
    if line.count(" | ") >= 2:
        return True
    if markdown or not standalone or _BULLET.match(line):
        return False
    return (len(line) <= 160 and len(line.split()) <= 20 and (line[0].isupper() or line[0].isdigit())
            and not line.endswith(_TERMINAL) and not line.endswith(","))


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
