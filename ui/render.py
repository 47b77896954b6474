"""Answer -> HTML and Markdown for the chat page. Pure functions: every text from the articles is
escaped, and article offsets are checked against the indexed text before anything is highlighted."""
from __future__ import annotations

import html
import re

from urllib.parse import urlsplit

from rag.types import ANSWER, PAGE_BREAK, REFUSE, Answer

CONTEXT_CHARS = 240  # characters of article shown around a quote in the sources panel


def confidence_badge(answer: Answer) -> str:
    """How sure the answer is, in words, with the confidence on hover; "" for a refusal, which says so
    in its own words."""
    if answer.kind == REFUSE:
        return ""
    words = "Confident answer" if answer.kind == ANSWER else "Possible answer — check the source"
    return (f'<span class="rag-confidence rag-{_esc(answer.kind)}" title="confidence {answer.confidence:.2f}">'
            f"{words}</span>")


def chat_html(answer: Answer, store=None, turn: int = 0, anchor: str | None = None) -> str:
    """The assistant's chat message, as HTML the chat shows without Markdown, math or autolinks: each
    quote is the article's text escaped, so the page shows it character for character. Each [n] links
    to citation n of answer number ``turn`` (the page's script opens it in the article view) as
    ``#turn-<turn>-cite-<n>``, or as ``#<anchor>-cite-<n>`` when ``anchor`` is given."""
    note = f'<p class="rag-notice"><em>{_esc(answer.notice)}</em></p>' if answer.notice else ""
    badge = confidence_badge(answer)
    return note + (f"<p>{badge}</p>" if badge else "") + _chat_body(answer, store, anchor or f"turn-{turn}")


def _chat_body(answer: Answer, store, anchor: str) -> str:
    if answer.kind == REFUSE:
        items = "".join(f'<li><em>{_esc(_hit_label(h, store))}</em>: '
                        f'<span class="rag-q">{_esc(_short(h.chunk.text, 180))}</span></li>' for h in answer.hits[:3])
        return ("<p><strong>The articles don't say.</strong> I found no sentence that answers this, so I won't "
                "quote a weak match.</p>" + (f"<p>Related passages (not an answer):</p><ul>{items}</ul>" if items else ""))
    parts = [f'<span class="rag-q">{_esc(c.quote)}</span> <a class="rag-cite-link" href="#{_esc(anchor)}-cite-{c.n}" '
             f'title="Open source {c.n}">[{c.n}]</a>' for c in answer.citations]
    return '<p class="rag-answer">' + " ".join(parts) + "</p>"


def _hit_label(hit, store) -> str:
    info = store.info(hit.chunk.doc_id) if store is not None else None
    return doc_label(hit.chunk.doc_id, info.title if info else None)


def doc_label(doc_id: str, title: str | None) -> str:
    """How a document is named to people: its title, with the file name after it."""
    return f"{title} — {doc_id}" if title else doc_id


def citation_choices(answer: Answer) -> list[tuple[str, str]]:
    """(label, value) of each citation for the page's citation radio group."""
    return [(f"[{c.n}] {doc_label(c.doc_id, c.title)}", f"{c.n}") for c in answer.citations]


def library_html(rows) -> str:
    """The library as a table that fits a phone: the title first, its file name and date under it."""
    if not rows:
        return '<div class="rag-library-empty">The library is empty.</div>'
    body = "".join(
        f'<tr><td><div class="rag-lib-title">{_esc(r.title or "(untitled)")}</div>'
        f'<div class="rag-meta">{_esc(r.source)} · {_esc(r.date or "undated")}</div></td>'
        f'<td class="rag-num">{r.kb:.1f}</td><td class="rag-num">{r.passages}</td></tr>' for r in rows)
    return ('<table class="rag-library"><thead><tr><th>Article</th><th class="rag-num">KB</th>'
            f'<th class="rag-num">Passages</th></tr></thead><tbody>{body}</tbody></table>')


def text_html(message: str) -> str:
    """A status message (it may hold file names) shown as plain text, never as Markdown or HTML."""
    return "".join(f"<p>{_esc(line)}</p>" for line in message.split("\n") if line.strip())


def sources_html(answer: Answer, store) -> str:
    """One card per citation: title, date, file, the passage around the quote with the quote marked,
    under a header saying how sure the answer is."""
    if answer.kind == REFUSE:
        cards = [f'<div class="rag-card rag-related"><div class="rag-label">Related passage {h.rank} · not an answer</div>'
                 f'<div class="rag-meta">{_esc(_hit_label(h, store))} · score {h.score:.3f}</div>'
                 f'<div class="rag-text">{_esc(_short(h.chunk.text, 400))}</div></div>' for h in answer.hits[:3]]
        return '<div class="rag-sources">' + "".join(cards) + "</div>"
    scores = {}
    for h in answer.hits:
        for c in answer.citations:
            if h.chunk.doc_id == c.doc_id and h.chunk.start <= c.start and c.end <= h.chunk.end:
                scores.setdefault(c.n, h.score)
    cards = []
    for c in answer.citations:
        doc = store.document(c.doc_id)
        text = doc.text
        lo, hi = max(0, c.start - CONTEXT_CHARS), min(len(text), c.end + CONTEXT_CHARS)
        around = (("…" if lo else "") + _esc(text[lo:c.start]) + f'<mark class="rag-quote" data-n="{c.n}">'
                  + _esc(text[c.start:c.end]) + "</mark>" + _esc(text[c.end:hi]) + ("…" if hi < len(text) else ""))
        meta = " · ".join(_esc(x) for x in (c.title or "(untitled)", c.date or "undated", c.doc_id))
        page = f" · page {c.page}" if c.page is not None else ""
        score = f' · passage score {scores[c.n]:.3f}' if c.n in scores else ""
        link = _link(c.url)
        cards.append(f'<div class="rag-card" id="cite-{c.n}"><div class="rag-label">[{c.n}]</div>'
                     f'<div class="rag-meta">{meta}{page}{score} · chars {c.start}–{c.end}</div>'
                     + (f'<div class="rag-meta rag-url">{link}</div>' if link else "")
                     + f'<div class="rag-text">{around}</div></div>')
    head = f'<div class="rag-sources-head">{confidence_badge(answer)}</div>'
    return '<div class="rag-sources">' + head + "".join(cards) + "</div>"


def article_html(store, doc_id: str | None, start: int | None = None, end: int | None = None,
                 mark_class: str = "rag-quote") -> str:
    """The whole indexed article with [start, end) marked. Only ids in the store are shown: anything
    else (a path, "../", a URL-encoded name) is "not found"."""
    doc = store.document(doc_id) if isinstance(doc_id, str) else None
    if doc is None:
        return '<div class="rag-article rag-missing">Article not found.</div>'
    text = doc.text
    byline = [x for x in (doc.author, doc.site) if x]
    meta = " · ".join(_esc(x) for x in (doc.date or "undated", *byline, doc.doc_id))
    pages = f" · {len(doc.pages)} page{'s' if len(doc.pages) != 1 else ''}" if doc.pages else ""
    link = _link(doc.url)
    head = (f'<div class="rag-article-title">{_esc(doc.title or "(untitled)")}</div>'
            f'<div class="rag-meta">{meta}{pages}</div>' + (f'<div class="rag-meta rag-url">{link}</div>' if link else ""))
    if not (start is not None and end is not None and 0 <= start < end <= len(text)):
        start = end = None
    body = _article_body(text, doc.pages, start, end, mark_class)
    return f'<div class="rag-article">{head}<div class="rag-article-text">{body}</div></div>'


def _article_body(text: str, pages, start: int | None, end: int | None, mark_class: str) -> str:
    """The escaped text with [start, end) marked and, for a PDF, a "Page n" marker where each page
    starts (in place of the line break that separates it from the page before)."""
    cuts: dict[int, list[str]] = {}
    skip: set[int] = set()  # positions of page-separating line breaks the markers replace
    for n, at in enumerate(pages or (), start=1):
        cuts.setdefault(at, []).append(f'<span class="rag-page-break" data-page="{n}">Page {n}</span>')
        if n > 1 and at > 0 and text[at - 1:at] == PAGE_BREAK:
            skip.add(at - 1)
    if start is not None:
        # The mark closes before a page marker at its end and opens after one at its start.
        cuts.setdefault(end, []).insert(0, "</mark>")
        cuts.setdefault(start, []).append(f'<mark id="rag-highlight" class="{mark_class}">')
    out, pos = [], 0
    for at in sorted(cuts):
        out.append(_esc("".join(ch for i, ch in enumerate(text[pos:at], start=pos) if i not in skip)))
        out.extend(cuts[at])
        pos = at
    out.append(_esc(text[pos:]))
    return "".join(out)


def _link(url: str | None) -> str:
    """A page's URL as a link that opens in a new tab without access to this page; only http(s)
    URLs are links (a page could state a javascript: URL), anything else is shown as text."""
    if not url:
        return ""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:  # "http://[" and the like
        scheme = ""
    if scheme not in ("http", "https"):
        return _esc(url)
    return f'<a href="{_esc(url.strip())}" target="_blank" rel="noopener noreferrer">{_esc(url)}</a>'


CLOSEST = "Closest passage, not an answer: the articles don't answer this question."


def answer_article_html(store, answer: Answer) -> str:
    """The article view after an answer: the first citation's sentence marked; for a refusal, the
    closest passage's article under a label saying it is not an answer; nothing when nothing was found."""
    if answer.citations:
        c = answer.citations[0]
        return article_html(store, c.doc_id, c.start, c.end)
    if not answer.hits:
        return ""
    top = answer.hits[0].chunk
    return (f'<div class="rag-note rag-closest">{_esc(CLOSEST)}</div>'
            + article_html(store, top.doc_id, top.start, top.end, mark_class="rag-passage"))


ARTICLE_GONE = "This article is no longer in the library; ask again to cite the articles it holds now."
ARTICLE_CHANGED = "This article has changed since the answer was given; ask again to cite its current text."


def citation_html(store, doc_id: str | None, start: int, end: int, quote: str) -> str:
    """The article of a citation made earlier, against ``store`` as it is now. The library may have
    changed since: the quote is marked only where the text still holds it (at its offsets, or else
    at its one occurrence); otherwise a note says so rather than marking other words."""
    doc = store.document(doc_id) if isinstance(doc_id, str) else None
    if doc is None:
        return f'<div class="rag-article rag-missing">{_esc(ARTICLE_GONE)}</div>'
    text = doc.text
    if text[start:end] != quote:
        at = text.find(quote) if quote else -1
        if at < 0 or text.find(quote, at + 1) >= 0:
            return f'<div class="rag-note">{_esc(ARTICLE_CHANGED)}</div>' + article_html(store, doc_id)
        start, end = at, at + len(quote)
    return article_html(store, doc_id, start, end)


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
.rag-q { white-space: pre-wrap; }
.rag-hidden { display: none !important; }
a.rag-cite-link { font-weight: 700; color: #1d4ed8; text-decoration: none; white-space: nowrap; }
a.rag-cite-link:hover, a.rag-cite-link:focus { text-decoration: underline; }
.rag-article-title { font-weight: 700; }
.rag-page-break { display: block; margin: 10px 0 6px; border-top: 1px dashed #9ca3af; font-size: 0.8em;
                  color: #6b7280; }
.rag-page-break:first-child { margin-top: 0; border-top: none; }
mark.rag-passage { background: #e5e7eb; padding: 1px 2px; border-radius: 3px; }
.rag-closest { background: #fef3c7; border: 1px solid #f59e0b; border-radius: 8px; padding: 6px 10px; }
table.rag-library { width: 100%; table-layout: fixed; border-collapse: collapse; font-size: 0.9em; }
table.rag-library th, table.rag-library td { border-bottom: 1px solid #e5e7eb; padding: 4px 6px; text-align: left;
                                             vertical-align: top; overflow-wrap: anywhere; }
table.rag-library th:nth-child(2) { width: 4.5em; }
table.rag-library th:nth-child(3) { width: 6.5em; }
table.rag-library .rag-num { text-align: right; }
@media (max-width: 700px) {
  .rag-article { max-height: 360px; }
  #rag-chat { height: 340px !important; max-height: 340px; }
}
"""
