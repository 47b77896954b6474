import shutil

import pytest

from conftest import MINI
from fakes import KeywordEmbedder
from rag.errors import RagError
from rag.pipeline import Assistant, build
from ui import render
from ui.app import example_questions, is_loopback, parse_auth, serve




@pytest.mark.parametrize("crafted", ["../../etc/passwd", "/etc/passwd", "..%2F..%2Fetc%2Fpasswd", "sub/../alpha.txt",
                                     "", None, "ALPHA.TXT"])
def test_article_view_shows_only_indexed_documents(mini_assistant, crafted):
    assert render.article_html(mini_assistant.index, crafted) == '<div class="rag-article rag-missing">Article not found.</div>'


def test_article_view_highlights_the_cited_sentence(mini_assistant):
    a = mini_assistant.ask("Where is Zephyr Dynamics based?")
    c = a.citations[0]
    page = render.article_html(mini_assistant.index, c.doc_id, c.start, c.end)
    assert '<mark id="rag-highlight" class="rag-quote">Zephyr Dynamics, a maker of wind turbines, is based in Lakeview.</mark>' in page
    assert page.count("<mark") == 1


def test_sources_panel_marks_quote_and_escapes_article_text(tmp_path):
    e = KeywordEmbedder()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.txt").write_text("Harbor <script>alert(1)</script> news\n\nThe harbor parade drew <b>many</b> visitors.\n")
    build([tmp_path / "c"], tmp_path / "i", embedder=e)
    a = Assistant.load(tmp_path / "i", embedder=e)
    answer = a.ask("harbor parade visitors")
    html = render.sources_html(answer, a.index)
    assert "<script>" not in html and "&lt;b&gt;many&lt;/b&gt;" in html
    assert '<mark class="rag-quote" data-n="1">The harbor parade drew &lt;b&gt;many&lt;/b&gt; visitors.</mark>' in html
    assert "Harbor &lt;script&gt;" in html  # the title in the card's meta line, escaped
    md = render.chat_markdown(answer)
    assert md == "The harbor parade drew \\<b\\>many\\</b\\> visitors. **[1]**"


def test_abstention_is_labelled_as_related_not_an_answer(mini_assistant):
    a = mini_assistant.ask("Who won the 2018 FIFA World Cup?")
    assert render.chat_markdown(a).startswith("**The articles don't say.**")
    assert render.sources_html(a, mini_assistant.index).count("not an answer") == 3


def test_details_show_ranks_and_the_searched_query(mini_assistant):
    a = mini_assistant.ask("And when?", history=["How many ovens does the bakery run?"])
    html = render.details_html(a)
    assert "Searched: <code>And when? How many ovens does the bakery run?</code>" in html
    assert html.count("<tr><td>") == 5


def test_examples_come_from_titles(mini_assistant):
    assert example_questions(mini_assistant.index) == [
        "Zephyr Dynamics opens a turbine plant in Lakeview", "Crumb and Co bakes sourdough for Harbor City",
        "Glacier station records record melt"]


def test_bind_rules():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert parse_auth("ann:s3cret") == ("ann", "s3cret") and parse_auth(None) is None
    with pytest.raises(RagError, match="user:password"):
        parse_auth("nocolon")


def test_serving_beyond_loopback_needs_auth(monkeypatch):
    monkeypatch.delenv("RAG_AUTH", raising=False)
    with pytest.raises(RagError, match="Refusing to serve on 0.0.0.0 without authentication"):
        serve("0.0.0.0", 7999, "/nonexistent")


def test_an_old_citation_is_marked_only_where_its_quote_still_is(tmp_path):
    e = KeywordEmbedder()
    corpus = tmp_path / "c"
    shutil.copytree(MINI, corpus)
    alpha = corpus / "alpha.txt"
    original = alpha.read_text(encoding="utf-8")

    def index_of(text: str | None):
        if text is None:
            alpha.unlink()
        else:
            alpha.write_text(text, encoding="utf-8")
        build([corpus], tmp_path / "i", embedder=e)
        return Assistant.load(tmp_path / "i", embedder=e).index

    index_of(original)
    a = Assistant.load(tmp_path / "i", embedder=e)
    c = a.ask("Where is Zephyr Dynamics based?").citations[0]
    quote = "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview."
    assert (c.doc_id, c.quote) == ("alpha.txt", quote)
    cited = (c.doc_id, c.start, c.end, c.quote)
    mark = f'<mark id="rag-highlight" class="rag-quote">{quote}</mark>'
    assert render.citation_html(a.index, *cited) == render.article_html(a.index, "alpha.txt", c.start, c.end)

    # a paragraph added above it: the old offsets now cover other words, the quote is there once
    moved = index_of(original.replace(quote, "Wind news from the coast.\n\n" + quote))
    assert mark not in render.article_html(moved, "alpha.txt", c.start, c.end)  # what a bare offset lookup shows
    page = render.citation_html(moved, *cited)
    assert mark in page and page.count("<mark") == 1

    changed_note = ('<div class="rag-note">This article has changed since the answer was given; ask again to cite '
                    'its current text.</div>')
    reworded = index_of(original.replace("is based in Lakeview", "moved to Rivertown"))
    assert render.citation_html(reworded, *cited) == changed_note + render.article_html(reworded, "alpha.txt")
    twice = index_of(original.replace(quote, "Wind news from the coast.\n\n" + quote + " " + quote))
    assert render.citation_html(twice, *cited) == changed_note + render.article_html(twice, "alpha.txt")
    gone = index_of(None)
    assert render.citation_html(gone, *cited) == ('<div class="rag-article rag-missing">This article is no longer in the '
                                                  'library; ask again to cite the articles it holds now.</div>')
