"""Answer -> HTML and Markdown for the chat page. Pure functions: every text from the articles is
escaped, and article offsets are checked against the indexed text before anything is highlighted."""
from __future__ import annotations

import html
import re

from rag.types import ANSWER, REFUSE, Answer

CONTEXT_CHARS = 240  # characters of article shown around a quote in the sources panel


def confidence_badge(answer: Answer) -> str:
    """How sure the answer is, in words, with the confidence on hover; "" for a refusal, which says so
    in its own words."""
    if answer.kind == REFUSE:
        return ""
    words = "Confident answer" if answer.kind == ANSWER else "Possible answer — check the source"
    return (f'<span class="rag-confidence rag-{_esc(answer.kind)}" title="confidence {answer.confidence:.2f}">'
            f"{words}</span>")


def chat_markdown(answer: Answer) -> str:
    """The assistant's chat message."""
    note = f"*{_md(answer.notice)}*\n\n" if answer.notice else ""
    badge = confidence_badge(answer)
    return note + (badge + "\n\n" if badge else "") + _chat_body(answer)


def _chat_body(answer: Answer) -> str:
    if answer.kind == REFUSE:
        lines = ["**The articles don't say.** I found no sentence that answers this, so I won't quote a weak match. "
                 "Related passages (not an answer):"]
        for h in answer.hits[:3]:
            lines.append(f"- *{_md(h.chunk.doc_id)}*: {_md(_short(h.chunk.text, 180))}")
        return "\n".join(lines)
    parts = [f"{_md(c.quote)} **[{c.n}]**" for c in answer.citations]
    return " ".join(parts)


def sources_html(answer: Answer, index) -> str:
    """One card per citation: title, date, file, the passage around the quote with the quote marked,
    under a header saying how sure the answer is."""
    if answer.kind == REFUSE:
        cards = [f'<div class="rag-card rag-related"><div class="rag-label">Related passage {h.rank} · not an answer</div>'
                 f'<div class="rag-meta">{_esc(h.chunk.doc_id)} · score {h.score:.3f}</div>'
                 f'<div class="rag-text">{_esc(_short(h.chunk.text, 400))}</div></div>' for h in answer.hits[:3]]
        return '<div class="rag-sources">' + "".join(cards) + "</div>"
    scores = {}
    for h in answer.hits:
        for c in answer.citations:
            if h.chunk.doc_id == c.doc_id and h.chunk.start <= c.start and c.end <= h.chunk.end:
                scores.setdefault(c.n, h.score)
    cards = []
    for c in answer.citations:
        doc = index.document(c.doc_id)
        text = doc.text
        lo, hi = max(0, c.start - CONTEXT_CHARS), min(len(text), c.end + CONTEXT_CHARS)
        around = (("…" if lo else "") + _esc(text[lo:c.start]) + f'<mark class="rag-quote" data-n="{c.n}">'
                  + _esc(text[c.start:c.end]) + "</mark>" + _esc(text[c.end:hi]) + ("…" if hi < len(text) else ""))
        meta = " · ".join(_esc(x) for x in (c.title or "(untitled)", c.date or "undated", c.doc_id))
        score = f' · passage score {scores[c.n]:.3f}' if c.n in scores else ""
        cards.append(f'<div class="rag-card" id="cite-{c.n}"><div class="rag-label">[{c.n}]</div>'
                     f'<div class="rag-meta">{meta}{score} · chars {c.start}–{c.end}</div>'
                     f'<div class="rag-text">{around}</div></div>')
    head = f'<div class="rag-sources-head">{confidence_badge(answer)}</div>'
    return '<div class="rag-sources">' + head + "".join(cards) + "</div>"


def article_html(index, doc_id: str | None, start: int | None = None, end: int | None = None) -> str:
    """The whole indexed article with [start, end) marked. Only ids in the index are shown: anything
    else (a path, "../", a URL-encoded name) is "not found"."""
    doc = index.document(doc_id) if isinstance(doc_id, str) else None
    if doc is None:
        return '<div class="rag-article rag-missing">Article not found.</div>'
    text = doc.text
    head = f'<div class="rag-meta">{_esc(doc.title or "(untitled)")} · {_esc(doc.date or "undated")} · {_esc(doc.doc_id)}</div>'
    if start is not None and end is not None and 0 <= start < end <= len(text):
        body = _esc(text[:start]) + '<mark id="rag-highlight" class="rag-quote">' + _esc(text[start:end]) + "</mark>" + _esc(text[end:])
    else:
        body = _esc(text)
    return f'<div class="rag-article">{head}<div class="rag-article-text">{body}</div></div>'


ARTICLE_GONE = "This article is no longer in the library; ask again to cite the articles it holds now."
ARTICLE_CHANGED = "This article has changed since the answer was given; ask again to cite its current text."


def citation_html(index, doc_id: str | None, start: int, end: int, quote: str) -> str:
    """The article of a citation made earlier, against ``index`` as it is now. The library may have
    changed since: the quote is marked only where the text still holds it (at its offsets, or else
    at its one occurrence); otherwise a note says so rather than marking other words."""
    doc = index.document(doc_id) if isinstance(doc_id, str) else None
    if doc is None:
        return f'<div class="rag-article rag-missing">{_esc(ARTICLE_GONE)}</div>'
    text = doc.text
    if text[start:end] != quote:
        at = text.find(quote) if quote else -1
        if at < 0 or text.find(quote, at + 1) >= 0:
            return f'<div class="rag-note">{_esc(ARTICLE_CHANGED)}</div>' + article_html(index, doc_id)
        start, end = at, at + len(quote)
    return article_html(index, doc_id, start, end)


def details_html(answer: Answer) -> str:
    """Retrieval details: the query searched, each passage's ranks and fused score, timings."""
    rows = "".join(
        f"<tr><td>{h.rank}</td><td>{_esc(h.chunk.doc_id)}</td><td>{h.dense_rank or '–'}</td><td>{h.bm25_rank or '–'}</td>"
        f"<td>{h.score:.3f}</td><td>{_esc(_short(h.chunk.text, 120))}</td></tr>" for h in answer.hits)
    t = answer.timings_ms
    timing = " · ".join(f"{k} {t.get(k, 0):.1f} ms" for k in ("embed", "retrieve", "answer", "total"))
    return (f'<div class="rag-details"><div>Searched: <code>{_esc(answer.searched or answer.question)}</code></div>'
            f'<div>Confidence {answer.confidence:.3f} · {timing}</div>'
            '<table><thead><tr><th>#</th><th>source</th><th>dense</th><th>BM25</th><th>fused</th><th>passage</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


def _esc(s: str) -> str:
    return html.escape(s, quote=True)


def _md(s: str) -> str:
    """Text shown in Markdown: escape the characters Markdown or HTML would interpret."""
    return re.sub(r"([\\`*_{}\[\]<>#|~])", r"\\\1", s)


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


CSS = """
.rag-card { border: 1px solid #e5e7eb; border-radius: 10px; padding: 10px 12px; margin-bottom: 10px; background: #fff; }
.rag-related { border-style: dashed; background: #fafafa; }
.rag-label { font-weight: 700; color: #1d4ed8; }
.rag-meta { font-size: 0.85em; color: #6b7280; margin: 2px 0 6px; overflow-wrap: anywhere; }
.rag-text, .rag-article-text { white-space: pre-wrap; line-height: 1.5; overflow-wrap: anywhere; }
.rag-note { font-weight: 600; color: #92400e; margin-bottom: 6px; }
.rag-sources-head { margin-bottom: 8px; }
.rag-confidence { display: inline-block; font-size: 0.85em; font-weight: 600; padding: 1px 8px; border-radius: 999px;
                  background: #dcfce7; color: #166534; cursor: help; }
.rag-confidence.rag-possible { background: #fef3c7; color: #92400e; border: 1px solid #f59e0b; }
mark.rag-quote { background: #fde68a; padding: 1px 2px; border-radius: 3px; }
.rag-article { max-height: 520px; overflow-y: auto; }
.rag-details table { width: 100%; border-collapse: collapse; font-size: 0.85em; }
.rag-details td, .rag-details th { border-bottom: 1px solid #e5e7eb; padding: 3px 6px; text-align: left; vertical-align: top; }
@media (max-width: 700px) { .rag-article { max-height: 360px; } }
"""
