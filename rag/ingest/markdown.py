"""Markdown bytes -> Document: the line classifier of rag.ingest.text with Markdown's marks (a ``#``
line is the title or a heading, code fences and image lines are never quoted). The text is the file
as decoded, markup included, so offsets index the file exactly like a .txt file's."""
from __future__ import annotations

from rag.ingest import text
from rag.types import Document

SUFFIXES = (".md", ".markdown")


def read(data: bytes, doc_id: str, path: str | None = None) -> tuple[Document, list[str]]:
    """The Document and its warnings (see rag.ingest.text.read).

    Raises:
        UnicodeError: the bytes look binary.
    """
    return text.read(data, doc_id, path, markdown=True)
