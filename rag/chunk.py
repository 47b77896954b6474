"""Document -> sentences and passages (chunks).

Sentences come only from body blocks; a passage is a window of consecutive sentences inside one run
of body text and never crosses a heading, a caption, a section or a document. ``text[start:end]``
of the document is exactly each sentence and each passage.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

import pysbd

from rag.config import ChunkSettings
from rag.ingest import quotable
from rag.types import BODY, HEADING, Chunk, Document, Sentence

# Bump when split() would cut a document differently: indexes record it, and a different value
# re-embeds everything (reused vectors must belong to exactly the same passages and sentences).
VERSION = 7

# pysbd is accurate but slow on pathological input; beyond this a line is split by a plain rule.
_PYSBD_MAX_CHARS = 20_000
_SIMPLE_SPLIT = re.compile(r"(?<=[.!?。！？])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_MAX_SENTENCE_WORDS = 200
_LINE_BREAKS = {ord(c): " " for c in "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}  # longer "sentences" (lists, tables, run-ons) are cut at whitespace
# "!" and "?" that cannot end an English sentence: inside a token (a URL's "?id=5", CSS "!important",
# "!="), opening a Markdown image "![alt](…)", or a run of "!" before a lowercase word ("Yahoo! rose",
# "What a finish?! fans asked": a sentence starts with a capital). pysbd cuts at some of them.
_NOT_AN_END = re.compile(r"[!?](?=[\w=])|!(?=\[[^\]]*\][(\[])|[!?]*![!?]*(?=\s+[a-z])")


@dataclass(frozen=True)
class Split:
    """A document's sentences and chunks; ``ranges[i]`` is chunk i's [lo, hi) into ``sentences``."""

    sentences: list[Sentence]
    chunks: list[Chunk]
    ranges: list[tuple[int, int]]


@lru_cache(maxsize=1)
def _segmenter() -> pysbd.Segmenter:
    _cache_pysbd_patterns()
    return pysbd.Segmenter(language="en", clean=False)


@lru_cache(maxsize=65_536)
def _compiled(pattern, flags: int = 0) -> re.Pattern:
    return re.compile(pattern, flags)


def _cache_pysbd_patterns() -> None:
    """Give pysbd's modules an ``re`` that keeps every pattern it compiles.

    pysbd builds its patterns as strings, many per abbreviation, and passes them to re.sub, re.search
    and the like, whose cache holds 512: Python compiled ~24 patterns per SciFact abstract again
    (124,000 in all), and splitting those abstracts took 42 s instead of 37 s. Same patterns, same
    calls, so the same cuts (the chunk tests pin them).
    """
    import sys
    import types

    cached = types.ModuleType("re")
    cached.__dict__.update(vars(re))
    # The signatures of re's own functions, so a flag passed by position lands where re puts it.
    cached.compile = _compiled
    cached.search = lambda pattern, string, flags=0: _compiled(pattern, flags).search(string)
    cached.match = lambda pattern, string, flags=0: _compiled(pattern, flags).match(string)
    cached.fullmatch = lambda pattern, string, flags=0: _compiled(pattern, flags).fullmatch(string)
    cached.findall = lambda pattern, string, flags=0: _compiled(pattern, flags).findall(string)
    cached.finditer = lambda pattern, string, flags=0: _compiled(pattern, flags).finditer(string)
    cached.split = lambda pattern, string, maxsplit=0, flags=0: _compiled(pattern, flags).split(string, maxsplit)
    cached.sub = lambda pattern, repl, string, count=0, flags=0: _compiled(pattern, flags).sub(repl, string, count)
    cached.subn = lambda pattern, repl, string, count=0, flags=0: _compiled(pattern, flags).subn(repl, string, count)
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("pysbd") and getattr(module, "re", None) is re:
            module.re = cached


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """[start, end) spans of the sentences of ``text[start:end]``, stripped of surrounding spaces."""
    end = len(text) if end is None else end
    # pysbd ends a sentence at every line break; a block's line breaks are inside a hard-wrapped
    # paragraph, so they become spaces (same length: offsets still index ``text``).
    piece = text[start:end].translate(_LINE_BREAKS)
    if len(piece) > _PYSBD_MAX_CHARS:
        parts = _simple_split(piece)
    else:
        try:
            parts = _segmenter().segment(piece)
        except Exception:  # pysbd raises on some odd inputs; never lose the text because of it
            parts = _simple_split(piece)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for part in parts:
        stripped = part.strip()
        if not stripped:
            continue
        found = piece.find(stripped, cursor)
        if found < 0:  # segmenter altered the text: fall back to the simple rule for the rest
            spans.extend((start + s, start + e) for s, e in _locate(piece, _simple_split(piece[cursor:]), cursor))
            break
        cursor = found + len(stripped)
        spans.append((start + found, start + cursor))
    spans = _join_false_ends(piece, spans, start)
    return [c for span in spans for s in _cap_words(text, *span) for c in clauses(text, *s)]


def _join_false_ends(piece: str, spans: list[tuple[int, int]], start: int) -> list[tuple[int, int]]:
    """``spans`` with each cut made right after a mark of _NOT_AN_END undone (the two sides joined,
    gap included). Joining after segmenting, rather than hiding the marks from pysbd, leaves every
    other cut where it was: pysbd's cuts depend on their context."""
    false_ends = {start + i + 1 for m in _NOT_AN_END.finditer(piece) for i in range(m.start(), m.end())}
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if out and out[-1][1] in false_ends:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def _simple_split(piece: str) -> list[str]:
    return _SIMPLE_SPLIT.split(piece)


def _locate(piece: str, parts: list[str], cursor: int) -> list[tuple[int, int]]:
    out = []
    for part in parts:
        stripped = part.strip()
        if not stripped:
            continue
        found = piece.find(stripped, cursor)
        if found < 0:
            continue
        cursor = found + len(stripped)
        out.append((found, cursor))
    return out


# A quote longer than this is cut at clause boundaries, so a short answer can quote the part that
# answers: a cut piece is still a verbatim span of the text.
MAX_QUOTE_CHARS = 390  # with its " [1]" marker a quote then still fits a 400-character answer
_MIN_CLAUSE_CHARS = 60
_CLAUSE_END = re.compile(r"[;:,](?=\s+\S)|\s[\u2013\u2014-]\s")  # "; ", ": ", ", " and a spaced dash


def clauses(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) cut after clause punctuation into pieces of at most MAX_QUOTE_CHARS where it can
    be, each at least _MIN_CLAUSE_CHARS long (a sentence with no such cut stays whole)."""
    if end - start <= MAX_QUOTE_CHARS:
        return [(start, end)]
    cuts = [m.end() for m in _CLAUSE_END.finditer(text, start, end)]
    pieces: list[tuple[int, int]] = []
    lo = start
    while end - lo > MAX_QUOTE_CHARS:
        usable = [c for c in cuts if c - lo >= _MIN_CLAUSE_CHARS and end - c >= _MIN_CLAUSE_CHARS]
        fitting = [c for c in usable if c - lo <= MAX_QUOTE_CHARS]
        # The strongest break that fits, the latest among equals: ";" ":" or a dash, then a comma that
        # opens a new clause ("…, while …"), then any comma.
        cut = max(fitting, key=lambda c: (_strength(text, c), c)) if fitting else next((c for c in usable if c > lo), None)
        if cut is None:
            break
        piece_end = cut
        while piece_end > lo and text[piece_end - 1].isspace():
            piece_end -= 1
        pieces.append((lo, piece_end))
        lo = cut
        while lo < end and text[lo].isspace():
            lo += 1
    pieces.append((lo, end))
    return pieces


_CLAUSE_OPENER = re.compile(r"\s+(and|but|or|while|whereas|which|who|where|when|as|although|though|because|including|"
                            r"according|with|after|before|so)\b", re.I)


def _strength(text: str, cut: int) -> int:
    mark = text[cut - 1] if text[cut - 1] in ";:," else "-"
    if mark != ",":
        return 2
    return 1 if _CLAUSE_OPENER.match(text, cut) else 0


def _cap_words(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Cut a span with more than _MAX_SENTENCE_WORDS words at whitespace."""
    words = list(re.finditer(r"\S+", text[start:end]))
    if len(words) <= _MAX_SENTENCE_WORDS:
        return [(start, end)]
    out = []
    for i in range(0, len(words), _MAX_SENTENCE_WORDS):
        group = words[i:i + _MAX_SENTENCE_WORDS]
        out.append((start + group[0].start(), start + group[-1].end()))
    return out


def split(doc: Document, settings: ChunkSettings = ChunkSettings()) -> Split:
    """Sentences and overlapping passages of ``doc``."""
    sentences: list[Sentence] = []
    runs: list[list[int]] = []  # indices into ``sentences`` of each run of consecutive body blocks
    previous_kind = None
    for block in doc.blocks:
        if block.kind != BODY:
            previous_kind = block.kind
            continue
        if previous_kind != BODY or not runs:
            runs.append([])
        previous_kind = BODY
        for s, e in sentence_spans(doc.text, block.start, block.end):
            # A credit or footer can sit inside a body line ("… visitors. Photo: Jane Doe/GT The …"):
            # such a sentence is never quotable, so it never becomes one.
            if not quotable(doc.text[s:e]):
                continue
            runs[-1].append(len(sentences))
            sentences.append(Sentence(doc.doc_id, s, e, block.section))
    chunks: list[Chunk] = []
    ranges: list[tuple[int, int]] = []
    for run in runs:
        for lo, hi in windows([_word_count(doc.text, sentences[i]) for i in run], settings):
            first, last = sentences[run[lo]], sentences[run[hi - 1]]
            text = doc.text[first.start:last.end]
            chunks.append(Chunk(chunk_id(doc.doc_id, first.start, text), doc.doc_id, text,
                                first.start, last.end, first.section))
            ranges.append((run[lo], run[hi - 1] + 1))
    return Split(sentences, chunks, ranges)


def windows(word_counts: list[int], settings: ChunkSettings) -> list[tuple[int, int]]:
    """[lo, hi) windows of up to ``sentences_per_chunk`` sentences and ``max_words`` words (a longer
    single sentence gets a window of its own), consecutive windows sharing ``overlap`` sentences."""
    out: list[tuple[int, int]] = []
    n = len(word_counts)
    i = 0
    while i < n:
        j, words = i, 0
        while j < n and j - i < settings.sentences_per_chunk and (j == i or words + word_counts[j] <= settings.max_words):
            words += word_counts[j]
            j += 1
        out.append((i, j))
        if j >= n:
            break
        i = max(i + 1, j - settings.overlap)
    return out


def chunk_id(doc_id: str, start: int, text: str) -> str:
    return hashlib.sha256(f"{doc_id}\x00{start}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _word_count(text: str, s: Sentence) -> int:
    return len(text[s.start:s.end].split())


def passage_context(doc: Document, section: int) -> str | None:
    """The heading line(s) that tell what a passage of ``section`` is about: the document title,
    plus the section heading; a tagged headline ("… | Navy | Fleet") starts an unrelated story, so
    it replaces the title instead."""
    heading = next((doc.text[b.start:b.end] for b in doc.blocks if b.kind == HEADING and b.section == section), None)
    if heading is None:
        return doc.title
    if heading.count(" | ") >= 2:
        return heading.split(" | ")[0].strip()
    heading = heading.lstrip("#").strip()
    return f"{doc.title}\n{heading}" if doc.title else heading


def passage_text(context: str | None, chunk_text: str, settings: ChunkSettings) -> str:
    """What is embedded and BM25-indexed for a passage: its context (see ``passage_context``) and
    text. The context helps passages that only say "the company"."""
    if settings.title_in_passage and context:
        return f"{context}\n{chunk_text}"
    return chunk_text
