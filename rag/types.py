"""The frozen records passed between stages. Offsets are character offsets into ``Document.text``:
for .txt/.md the file decoded with ``Document.encoding`` and no newline translation, i.e.
``open(path, encoding=encoding, newline="").read()`` (a BOM is dropped, "\r\n" stays two characters);
for .html and .pdf the text extracted from the file (``encoding`` is then EXTRACTED_HTML or EXTRACTED_PDF)."""
from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

# Block kinds. Only "body" text is ever quoted in an answer; the rest is kept so offsets stay exact.
BODY, TITLE, DATE, HEADING, BOILERPLATE = "body", "title", "date", "heading", "boilerplate"

# Document.encoding of extracted formats: no codec gives the text back from the file's bytes; the
# reader (rag.ingest.read_document) does.
EXTRACTED_HTML, EXTRACTED_PDF = "html-text", "pdf-text"
# Between two pages of a PDF's text, belonging to neither. A line break, not a form feed: a sentence
# that runs on to the next page is then quoted like one that runs on to the next line.
PAGE_BREAK = "\n"


@dataclass(frozen=True)
class Block:
    """One line of a document (without its newline), classified."""

    start: int
    end: int
    kind: str
    section: int


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str
    sha256: str
    title: str | None = None
    date: str | None = None  # ISO 8601 when parseable, else None
    path: str | None = None
    encoding: str = "utf-8"
    blocks: tuple[Block, ...] = ()
    url: str | None = None  # an HTML page's canonical URL, as the page states it
    author: str | None = None
    site: str | None = None  # the site's name (HTML)
    pages: tuple[int, ...] = ()  # PDF: offset where each page's text starts (pages[0] == 0); () otherwise

    def page_of(self, offset: int) -> int | None:
        """The 1-based page holding character ``offset``; None for a document without pages."""
        return page_at(self.pages, offset)


def page_at(pages: tuple[int, ...] | list[int], offset: int) -> int | None:
    """The 1-based page whose text holds ``offset``, given the page start offsets; None without pages.
    A page with no text never holds an offset: the page after it (starting at the same offset) does."""
    return max(1, bisect_right(pages, offset)) if pages else None


@dataclass(frozen=True)
class Sentence:
    doc_id: str
    start: int
    end: int
    section: int


@dataclass(frozen=True)
class Chunk:
    """A passage of consecutive body sentences of one section of one document."""

    chunk_id: str
    doc_id: str
    text: str
    start: int
    end: int
    section: int = 0
    pid: int = -1  # the id the store that returned it gives this passage; -1 when not from a store
    encoding: str = "utf-8"  # of the source file: offsets index the text it decodes to


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # the fused score that ranks hits
    rank: int  # 1-based
    dense_rank: int | None = None  # None: not in that retriever's candidates
    bm25_rank: int | None = None


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: str
    title: str | None
    date: str | None
    start: int
    end: int
    quote: str
    encoding: str = "utf-8"  # how the source file was decoded; offsets index that text (see above)
    page: int | None = None  # PDF: the 1-based page the quote starts on
    url: str | None = None  # HTML: the page's URL, when it states one


# Outcomes of a question: a confident answer, a possible answer (quoted, with its low confidence), or
# a refusal (the model is sure enough that the articles do not answer).
ANSWER, POSSIBLE, REFUSE = "answer", "possible", "refuse"


@dataclass(frozen=True)
class Answer:
    """``text`` is "" and ``abstained`` is True only for a refusal (``outcome`` "refuse")."""

    question: str
    text: str
    abstained: bool
    citations: tuple[Citation, ...] = ()
    hits: tuple[Hit, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    searched: str = ""  # the query actually searched (differs from the question for follow-ups)
    confidence: float = 0.0  # calibrated probability that the articles answer the question
    notice: str = ""  # something the user should know about how the question was read (e.g. it was cut)
    outcome: str = ""  # ANSWER, POSSIBLE or REFUSE; "" reads as REFUSE when abstained, else ANSWER

    @property
    def kind(self) -> str:
        return self.outcome or (REFUSE if self.abstained else ANSWER)

    def to_dict(self) -> dict[str, Any]:
        """The public JSON schema (`rag ask --json`)."""
        return {
            "question": self.question,
            "answer": self.text,
            "abstained": self.abstained,
            "outcome": self.kind,
            "confidence": round(float(self.confidence), 4),
            "citations": [
                {"n": c.n, "source": c.doc_id, "title": c.title, "date": c.date,
                 "start": c.start, "end": c.end, "quote": c.quote, "encoding": c.encoding, "page": c.page,
                 "url": c.url}
                for c in self.citations
            ],
            "passages": [
                {"rank": h.rank, "source": h.chunk.doc_id, "start": h.chunk.start, "end": h.chunk.end,
                 "score": round(float(h.score), 6), "text": h.chunk.text, "encoding": h.chunk.encoding}
                for h in self.hits
            ],
            "timings_ms": {k: round(float(self.timings_ms.get(k, 0.0)), 3)
                           for k in ("embed", "retrieve", "answer", "total")},
        }

    def to_json(self) -> str:
        """``to_dict()`` as one line of JSON, non-ASCII kept as is: what `rag ask --json` prints and the
        HTTP API's /api/ask returns."""
        return json.dumps(self.to_dict(), ensure_ascii=False)
