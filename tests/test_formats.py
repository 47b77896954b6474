"""Web pages and PDFs: real extraction (trafilatura, pypdf) on files the tests write, offsets into the
extracted text, page numbers and URLs carried to citations, bad files as warnings."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import MINI
from evals.pdf_extract import make_pdf, paragraphs
from fakes import KeywordEmbedder, rule_model
from rag.config import Settings
from rag.ingest import ingest, read_document
from rag.pipeline import Assistant, build
from rag.types import BODY, EXTRACTED_HTML, EXTRACTED_PDF, HEADING, TITLE

KEYWORDS = ["zephyr", "turbine", "bakery", "sourdough", "ferry", "passengers", "fares", "lighthouse", "lamp",
            "storm", "beacon", "keeper"]

PAGE_HTML = """<!DOCTYPE html><html lang="en"><head><title>Harbor ferry returns | Coast News</title>
<meta name="author" content="Jane Quill"><meta property="og:site_name" content="Coast News">
<meta property="article:published_time" content="2023-07-04T10:00:00Z">
<meta property="og:title" content="Harbor ferry returns after ten years">
<link rel="canonical" href="https://news.example.com/2023/07/harbor-ferry">
</head><body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/tours">Lighthouse tours and ferry timetables</a></li>
<li>Subscribe to our newsletter today</li></ul></nav>
<div class="ad">Ferry fares slashed! Buy cheap lighthouse passes now, limited offer.</div>
<article><h1>Harbor ferry returns after ten years</h1>
<p>The harbor ferry between Lakeview and Naples sailed again on Tuesday after a pause of ten years, carrying 312 passengers on its first trip.</p>
<h2>A new engine</h2>
<p>The ferry runs on a new electric engine, which halves the fuel cost of every crossing. The mayor called it a good day for the town &amp; its people.</p>
<ul><li>Departures every hour from 7 am.</li><li>Tickets cost 4 euros.</li></ul>
<p>Fares will stay at four euros until the end of the year, the operator said.</p>
</article>
<section class="comments"><h3>Comments</h3><p>I rode the ferry as a child and the passengers always sang on the way, what a joy that was!</p></section>
<footer><p>Copyright 2023 Coast News. All rights reserved. About us | Contact | Privacy policy</p></footer>
</body></html>
"""

# Exactly what the page's article holds, as the reader lays it out: no menu, ad, comment or footer.
PAGE_TEXT = (
    "Harbor ferry returns after ten years\n\n"
    "The harbor ferry between Lakeview and Naples sailed again on Tuesday after a pause of ten years, carrying 312 "
    "passengers on its first trip.\n\n"
    "A new engine\n\n"
    "The ferry runs on a new electric engine, which halves the fuel cost of every crossing. The mayor called it a "
    "good day for the town & its people.\n\n"
    "Departures every hour from 7 am.\nTickets cost 4 euros.\n\n"
    "Fares will stay at four euros until the end of the year, the operator said."
)

NAV_ONLY_HTML = """<html><head><title>Site map</title></head><body><nav><a href="/">Home</a> <a href="/news">News</a>
<a href="/sport">Sport</a></nav><footer>Copyright 2024 Example. All rights reserved.</footer></body></html>"""

LIGHTHOUSE = [
    ["The lighthouse on Cape Verglas was built in 1871 from granite blocks. Its first keeper was Ada Morrow, who "
     "kept the lamp burning for forty years.", *paragraphs(2, seed=1)],
    [*paragraphs(2, seed=2), "In 1953 a storm broke the lamp, and the lighthouse stayed dark for nine days."],
    ["The lamp was replaced by an electric beacon in 1961.", *paragraphs(1, seed=3)],
]


def lighthouse_pdf(path: Path, columns: int = 2) -> Path:
    return make_pdf(path, LIGHTHOUSE, columns=columns, title="The lighthouse keepers of Cape Verglas",
                    header="Verglas Quarterly - local history", footer=True)


def scanned_pdf(path: Path) -> Path:
    """A page with only a picture on it (a rectangle here): no text layer, as a scan."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_fill_color(90, 90, 90)
    pdf.rect(20, 20, 170, 250, style="F")
    pdf.output(str(path))
    return path


def fake_assistant(index_dir: Path, embedder) -> Assistant:
    return Assistant.load(index_dir, embedder=embedder, settings=Settings(min_confidence=0.0), model=rule_model())


# ------------------------------------------------------------------------------------------------ HTML

def test_html_keeps_the_article_and_its_metadata_and_drops_the_rest(tmp_path):
    page = tmp_path / "ferry.html"
    page.write_text(PAGE_HTML, encoding="utf-8")
    doc, warnings = read_document(page, "ferry.html")
    assert warnings == []
    assert doc.text == PAGE_TEXT  # menu, ad, comment and footer are gone; "&amp;" is "&"
    assert (doc.title, doc.date, doc.author, doc.site, doc.url, doc.encoding) == (
        "Harbor ferry returns after ten years", "2023-07-04", "Jane Quill", "Coast News",
        "https://news.example.com/2023/07/harbor-ferry", EXTRACTED_HTML)
    assert [(b.kind, b.section, doc.text[b.start:b.end][:22]) for b in doc.blocks] == [
        (TITLE, 0, "Harbor ferry returns a"), (BODY, 0, "The harbor ferry betwe"), (HEADING, 1, "A new engine"),
        (BODY, 1, "The ferry runs on a ne"), (BODY, 1, "Departures every hour "), (BODY, 1, "Tickets cost 4 euros."),
        (BODY, 1, "Fares will stay at fou")]
    assert doc.pages == ()


def test_html_citations_carry_the_url_and_slice_the_extracted_text(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "ferry.html").write_text(PAGE_HTML, encoding="utf-8")
    e = KeywordEmbedder(KEYWORDS)
    build([folder], tmp_path / "idx", embedder=e)
    a = fake_assistant(tmp_path / "idx", e)
    store_text = a.store.document("ferry.html").text
    assert store_text == PAGE_TEXT
    # The comment ("passengers always sang") and the ad ("fares slashed") were never indexed.
    texts = [a.store.passage(p).text for p in range(len(a.store))]
    assert not any("sang" in t or "slashed" in t or "Subscribe" in t for t in texts)
    answer = a.ask("How many passengers did the ferry carry?")
    c = answer.citations[0]
    assert c.quote.startswith("The harbor ferry between Lakeview and Naples")
    assert store_text[c.start:c.end] == c.quote
    assert (c.url, c.page, c.encoding) == ("https://news.example.com/2023/07/harbor-ferry", None, EXTRACTED_HTML)
    d = answer.to_dict()["citations"][0]
    assert (d["url"], d["page"]) == ("https://news.example.com/2023/07/harbor-ferry", None)


def test_html_without_article_text_is_one_warning_and_the_rest_is_indexed(tmp_path):
    (tmp_path / "map.html").write_text(NAV_ONLY_HTML, encoding="utf-8")
    (tmp_path / "empty.htm").write_bytes(b"")
    shutil.copy(MINI / "alpha.txt", tmp_path / "alpha.txt")
    report = ingest([tmp_path])
    assert [d.doc_id for d in report.documents] == ["alpha.txt"]
    assert report.warnings == [
        f"{tmp_path / 'empty.htm'}: skipped, the file is empty",
        f"{tmp_path / 'map.html'}: skipped, no article text found in the page (only navigation, or nothing readable)",
    ]


# ------------------------------------------------------------------------------------------------- PDF

def test_pdf_pages_are_where_each_page_starts_and_running_lines_are_dropped(tmp_path):
    doc, warnings = read_document(lighthouse_pdf(tmp_path / "l.pdf"), "l.pdf")
    assert warnings == [] and doc.encoding == EXTRACTED_PDF
    assert len(doc.pages) == 3 and doc.pages[0] == 0
    assert doc.title == "The lighthouse keepers of Cape Verglas"
    # The header and "Page n of 3" repeat on every page: extraction noise, not article text.
    assert "Verglas Quarterly" not in doc.text and not any(f"Page {n} of 3" in doc.text for n in (1, 2, 3))
    # Each page's text starts where pages says, and holds that page's sentences (two columns, in order).
    for n, paras in enumerate(LIGHTHOUSE, start=1):
        lo = doc.pages[n - 1]
        hi = doc.pages[n] - 1 if n < 3 else len(doc.text)  # -1: the line break between pages is on neither
        page_text = " ".join(doc.text[lo:hi].split())
        for para in paras:
            assert para in page_text, (n, para)
    assert doc.text[doc.pages[1] - 1] == "\n"
    at = doc.text.index("In 1953 a storm")
    assert doc.page_of(at) == 2 and doc.page_of(doc.pages[2]) == 3 and doc.page_of(doc.pages[2] - 1) == 2


def test_pdf_citations_name_their_page(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    lighthouse_pdf(folder / "lighthouse.pdf")
    e = KeywordEmbedder(KEYWORDS)
    build([folder], tmp_path / "idx", embedder=e)
    a = fake_assistant(tmp_path / "idx", e)
    text = a.store.document("lighthouse.pdf").text
    for question, opening, page in [("When did the storm break the lamp?", "In 1953 a storm", 2),
                                    ("When was the electric beacon installed?", "The lamp was replaced", 3),
                                    ("Who was the first lighthouse keeper?", "Its first keeper was", 1)]:
        c = a.ask(question).citations[0]
        assert c.quote.startswith(opening) and text[c.start:c.end] == c.quote
        assert (c.page, c.url) == (page, None), question


def test_a_sentence_running_on_to_the_next_page_is_cited_at_its_first_page(tmp_path):
    pdf = make_pdf(tmp_path / "run.pdf", [["The keeper wrote in her log that the storm"],
                                          ["lasted three days and broke every window of the tower."]])
    doc, _ = read_document(pdf, "run.pdf")
    assert doc.text == "The keeper wrote in her log that the storm\nlasted three days and broke every window of the tower."
    assert doc.pages == (0, 43)
    from rag.chunk import split

    (sentence,) = split(doc).sentences
    assert (sentence.start, sentence.end) == (0, len(doc.text)) and doc.page_of(sentence.start) == 1


def test_bad_pdfs_are_one_warning_each_and_the_rest_is_indexed(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    shutil.copy(MINI / "alpha.txt", folder / "alpha.txt")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer garbage")
    (folder / "zero.pdf").write_bytes(b"")
    scanned_pdf(folder / "scan.pdf")
    make_pdf(folder / "gap.pdf", [["The lamp was lit at dusk every day."], [], ["The storm passed by morning."]])
    report = build([folder], tmp_path / "idx", embedder=KeywordEmbedder(KEYWORDS))
    assert report.documents == 2  # alpha.txt and gap.pdf
    warned = {Path(w.split(": ")[0]).name: w.split(": ", 1)[1] for w in report.warnings}
    assert warned == {
        "broken.pdf": warned["broken.pdf"],  # pypdf's own words follow; checked below
        "gap.pdf": "page 2 of 3 has no text layer (scanned?); the rest is indexed",
        "scan.pdf": "skipped, no text layer (a scanned PDF?): run OCR on it first (e.g. ocrmypdf) and index the result",
        "zero.pdf": "skipped, the file is empty",
    }
    assert warned["broken.pdf"].startswith("skipped, not a readable PDF (")
    assert all("\n" not in w for w in report.warnings)


def test_cli_index_and_ask_over_every_format(tmp_path, monkeypatch, capsys):
    """`rag index` over .txt, .md, .html and .pdf, then `rag ask --json`: citations carry url and page,
    and every quote is its document's text at its offsets."""
    import rag.pipeline
    from rag.cli import main

    folder = tmp_path / "articles"
    shutil.copytree(MINI, folder)
    (folder / "ferry.html").write_text(PAGE_HTML, encoding="utf-8")
    lighthouse_pdf(folder / "lighthouse.pdf")
    e = KeywordEmbedder(KEYWORDS)
    # The CLI with the fake embedder: `rag index` builds with it, `rag ask` loads with it.
    real_build = rag.pipeline.build
    monkeypatch.setattr(rag.pipeline, "build", lambda *a, **k: real_build(*a, **{**k, "embedder": e}))
    load = Assistant.load.__func__
    monkeypatch.setattr(Assistant, "load", classmethod(
        lambda cls, index_dir=None, embedder=None, settings=None, store=None: load(cls, index_dir, e, settings, rule_model(), store)))
    idx = str(tmp_path / "idx")
    assert main(["index", str(folder), "--index-dir", idx]) == 0
    capsys.readouterr()
    assert main(["docs", "--json", "--index-dir", idx]) == 0
    docs = {d["source"]: d for d in map(json.loads, capsys.readouterr().out.splitlines())}
    assert sorted(docs) == ["alpha.txt", "beta.md", "ferry.html", "lighthouse.pdf", "sub/gamma.txt"]
    assert (docs["lighthouse.pdf"]["pages"], docs["ferry.html"]["url"]) == (3, "https://news.example.com/2023/07/harbor-ferry")
    store = Assistant.load(idx).store
    seen = {}
    for question in ["When did the storm break the lamp?", "How many passengers did the ferry carry?",
                     "Where is Zephyr based?", "Who bakes the sourdough?"]:
        assert main(["ask", question, "--json", "--min-confidence", "0", "--index-dir", idx]) == 0
        d = json.loads(capsys.readouterr().out)
        for c in d["citations"]:
            assert store.document(c["source"]).text[c["start"]:c["end"]] == c["quote"]
        top = d["citations"][0]
        seen[top["source"]] = (top["page"], top["url"])
    assert seen == {"lighthouse.pdf": (2, None), "ferry.html": (None, "https://news.example.com/2023/07/harbor-ferry"),
                    "alpha.txt": (None, None), "beta.md": (None, None)}
    assert main(["ask", "When did the storm break the lamp?", "--index-dir", idx, "--min-confidence", "0"]) == 0
    assert "lighthouse.pdf, page 2 — " in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- stores

@pytest.mark.parametrize("kind", ["local", "milvus-lite"])
def test_both_stores_keep_url_pages_author_and_site(tmp_path, kind):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "ferry.html").write_text(PAGE_HTML, encoding="utf-8")
    lighthouse_pdf(folder / "lighthouse.pdf")
    spec = "local" if kind == "local" else f"milvus-lite:{tmp_path / 'milvus.db'}"
    e = KeywordEmbedder(KEYWORDS)
    build([folder], tmp_path / "idx", embedder=e, store=spec)
    expected = {d.doc_id: d for d in ingest([folder]).documents}
    a = Assistant.load(tmp_path / "idx", embedder=e, model=rule_model(), store=spec)
    try:
        for doc_id, want in expected.items():
            got = a.store.document(doc_id)
            info = a.store.info(doc_id)
            assert (got.text, got.url, got.author, got.site, tuple(got.pages)) == \
                (want.text, want.url, want.author, want.site, want.pages)
            assert (info.url, tuple(info.pages)) == (want.url, want.pages)
        assert expected["lighthouse.pdf"].pages and expected["ferry.html"].url  # not comparing empty to empty
    finally:
        close = getattr(a.store, "close", None)
        if close:
            close()


@pytest.mark.parametrize("kind", ["local", "milvus-lite"])
def test_a_new_url_with_the_same_text_is_listed_by_the_next_build(tmp_path, kind):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "ferry.html").write_text(PAGE_HTML, encoding="utf-8")
    spec = "local" if kind == "local" else f"milvus-lite:{tmp_path / 'milvus.db'}"
    e = KeywordEmbedder(KEYWORDS)
    build([folder], tmp_path / "idx", embedder=e, store=spec)
    moved = PAGE_HTML.replace("https://news.example.com/2023/07/harbor-ferry", "https://example.org/ferry")
    assert moved != PAGE_HTML
    (folder / "ferry.html").write_text(moved, encoding="utf-8")
    assert ingest([folder]).documents[0].text == ingest([folder]).documents[0].text  # same extraction
    build([folder], tmp_path / "idx", embedder=e, store=spec)
    a = Assistant.load(tmp_path / "idx", embedder=e, model=rule_model(), store=spec)
    try:
        assert a.store.info("ferry.html").url == a.store.document("ferry.html").url == "https://example.org/ferry"
    finally:
        close = getattr(a.store, "close", None)
        if close:
            close()


def test_an_index_written_before_these_fields_still_loads(tmp_path):
    """docs.jsonl records without url/pages (older indexes) read as a document without them."""
    from rag.store import generations as storage

    e = KeywordEmbedder()
    build([MINI], tmp_path / "idx", embedder=e)
    gen = storage.current_generation(tmp_path / "idx")
    [docs] = gen.glob("*docs.jsonl")  # the one segment's
    records = [json.loads(line) for line in docs.read_text(encoding="utf-8").splitlines()]
    old = "".join(json.dumps({k: v for k, v in r.items() if k not in ("url", "author", "site", "pages")},
                             ensure_ascii=False) + "\n" for r in records)
    docs.write_text(old, encoding="utf-8")
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["files"][docs.name] = docs.stat().st_size
    (gen / "manifest.json").write_text(json.dumps(manifest))
    doc = storage.load(tmp_path / "idx").document("alpha.txt")
    assert (doc.url, doc.pages, doc.page_of(5)) == (None, (), None)


# -------------------------------------------------------------------------------------------- the page

def test_source_card_and_article_view_show_page_and_url(tmp_path):
    from ui import render

    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "ferry.html").write_text(PAGE_HTML.replace("https://news.example.com/2023/07/harbor-ferry",
                                                         "https://news.example.com/a?b=1&amp;c=%22x%22"), encoding="utf-8")
    lighthouse_pdf(folder / "lighthouse.pdf")
    e = KeywordEmbedder(KEYWORDS)
    build([folder], tmp_path / "idx", embedder=e)
    a = fake_assistant(tmp_path / "idx", e)
    pdf_answer = a.ask("When did the storm break the lamp?")
    cards = render.sources_html(pdf_answer, a.store)
    assert " · page 2 · " in cards and "<a " not in cards
    article = render.answer_article_html(a.store, pdf_answer)
    assert [article.count(f'data-page="{n}">Page {n}</span>') for n in (1, 2, 3)] == [1, 1, 1]
    assert article.index('data-page="2"') < article.index('<mark id="rag-highlight"') < article.index('data-page="3"')
    html_answer = a.ask("How many passengers did the ferry carry?")
    cards = render.sources_html(html_answer, a.store)
    link = ('<a href="https://news.example.com/a?b=1&amp;c=%22x%22" target="_blank" rel="noopener noreferrer">'
            "https://news.example.com/a?b=1&amp;c=%22x%22</a>")
    assert link in cards and link in render.answer_article_html(a.store, html_answer)
    assert "Jane Quill · Coast News" in render.answer_article_html(a.store, html_answer)


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,<script>x</script>", "http://["])
def test_only_web_addresses_become_links(url):
    from ui.render import _link

    assert "<a " not in _link(url) and "<script" not in _link(url)


def test_library_uploads_web_pages_and_pdfs(tmp_path):
    from ui.library import Library, rows

    e = KeywordEmbedder(KEYWORDS)
    build([MINI], tmp_path / "idx", embedder=e)
    library = Library(tmp_path / "idx", tmp_path / "library", embedder=e)
    up = tmp_path / "up"
    up.mkdir()
    (up / "ferry.html").write_text(PAGE_HTML, encoding="utf-8")
    lighthouse_pdf(up / "lighthouse.pdf")
    scanned_pdf(up / "scan.pdf")
    (up / "map.html").write_text(NAV_ONLY_HTML, encoding="utf-8")
    added, problems = library.add([(up / "ferry.html", "ferry.html"), (up / "lighthouse.pdf", "lighthouse.pdf"),
                                   (up / "scan.pdf", "scan.pdf"), (up / "map.html", "map.html")])
    assert added == ["ferry.html", "lighthouse.pdf"]
    assert problems == [
        "scan.pdf: no text layer (a scanned PDF?): run OCR on it first (e.g. ocrmypdf) and index the result",
        "map.html: no article text found in the page (only navigation, or nothing readable)"]
    a = fake_assistant(tmp_path / "idx", e)
    assert [r.source for r in rows(a.store)] == ["alpha.txt", "beta.md", "ferry.html", "lighthouse.pdf", "sub/gamma.txt"]
    assert a.ask("When did the storm break the lamp?").citations[0].page == 2
    # The same page again is a copy, recognised by its extracted text.
    again, problems = library.add([(up / "ferry.html", "ferry-copy.html")])
    assert again == [] and problems == ["ferry-copy.html: same text as ferry.html, which is already in the library"]
