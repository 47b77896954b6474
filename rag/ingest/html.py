"""HTML bytes -> Document: the article text trafilatura extracts (no navigation, ads, comments or
footer) and the page's metadata (title, date, author, site name, canonical URL).

``Document.text`` is built here from the extracted elements: one paragraph per block, separated by
a blank line (list items and table rows by a line break), so block offsets index it exactly. Offsets
therefore index the extracted text, not the HTML source; ``encoding`` says so (EXTRACTED_HTML).
Removing boilerplate is the extractor's job: no line rules are applied on top of it.
"""
from __future__ import annotations

import hashlib
import logging

from rag.ingest.text import Unreadable, iso_date
from rag.types import BODY, EXTRACTED_HTML, HEADING, TITLE, Block, Document

SUFFIXES = (".html", ".htm")


def read(data: bytes, doc_id: str, path: str | None = None) -> tuple[Document, list[str]]:
    """The page's article as a Document, and warnings (none so far).

    Raises:
        Unreadable: the page holds no article text the extractor can find.
    """
    if not data.strip():
        raise Unreadable("the file is empty")
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Unreadable("looks like a binary file, not HTML")
    # Imported here: trafilatura (and lxml) take ~0.3 s to import, which `rag ask` never needs.
    import trafilatura

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)  # it logs every page it finds empty
    try:
        # favor_precision: without it, a page of nothing but menus comes back as its link texts ("Home
        # News Sport"), which would then be quoted as an answer; with it, article text is still kept.
        got = trafilatura.bare_extraction(data, with_metadata=True, include_comments=False, include_tables=True,
                                          include_images=False, include_links=False, deduplicate=False,
                                          favor_precision=True)
    except Exception as e:  # lxml and the date parser raise their own errors on broken input
        raise Unreadable(f"the page could not be parsed ({type(e).__name__})") from None
    body = getattr(got, "body", None) if got is not None else None
    lines = list(_lines(body)) if body is not None else []
    if not any(kind == BODY and line for kind, line, _ in lines):
        raise Unreadable("no article text found in the page (only navigation, or nothing readable)")
    title = _clean(got.title) or None
    text, blocks = _assemble(lines, title)
    date = iso_date(dict(zip("ymd", got.date.split("-")))) if got.date and len(got.date.split("-")) == 3 else None
    doc = Document(doc_id=doc_id, text=text, sha256=hashlib.sha256(data).hexdigest(), title=title, date=date,
                   path=path, encoding=EXTRACTED_HTML, blocks=tuple(blocks), url=_clean(got.url) or None,
                   author=_clean(got.author) or None, site=_clean(got.sitename) or None)
    return doc, []


def _clean(value) -> str:
    return " ".join(str(value).split()) if value else ""


def _text(element, skip: tuple[str, ...] = ()) -> str:
    """The element's text with whitespace collapsed, leaving out descendants tagged ``skip``."""
    parts = [element.text or ""]
    for child in element:
        if child.tag not in skip:
            parts.append(_text(child, skip))
        parts.append(child.tail or "")
    return _clean(" ".join(parts))


def _lines(body):
    """(kind, text, group) of each line of the extracted article, in reading order: headings,
    paragraphs, list items, table rows (cells joined by " | "); ``group`` numbers the element a line
    comes from (the items of one list share it)."""
    for group, element in enumerate(body):
        tag = element.tag
        if tag == "head":
            yield HEADING, _text(element), group
        elif tag == "list":
            for item in element.iter("item"):
                yield BODY, _text(item, skip=("list",)), group
        elif tag == "table":
            for row in element.iter("row"):
                yield BODY, " | ".join(t for t in (_text(cell) for cell in row) if t), group
        else:  # p, quote, code and anything newer trafilatura emits: a paragraph
            yield BODY, _text(element), group


def _assemble(lines, title: str | None) -> tuple[str, list[Block]]:
    """The text and its blocks: a first heading that repeats the title is the title block."""
    text, blocks, section, previous = "", [], 0, None
    for kind, line, group in lines:
        if not line:
            continue
        if kind == HEADING and not blocks and title and line.casefold() == title.casefold():
            kind = TITLE
        elif kind == HEADING:
            section += 1
        if blocks:
            # The items of one list (rows of one table) follow each other line by line; anything
            # else is a paragraph of its own.
            text += "\n" if group == previous else "\n\n"
        blocks.append(Block(len(text), len(text) + len(line), kind, section))
        text += line
        previous = group
    return text, blocks
