import shutil

import pytest

from conftest import MINI
from fakes import KeywordEmbedder
from rag.errors import RagError
from rag.pipeline import Assistant, build
from rag.store.base import DocInfo
from ui import render
from ui.app import example_questions, is_loopback, parse_auth, serve




@pytest.mark.parametrize("crafted", ["../../etc/passwd", "/etc/passwd", "..%2F..%2Fetc%2Fpasswd", "sub/../alpha.txt",
                                     "", None, "ALPHA.TXT"])
def test_article_view_shows_only_indexed_documents(mini_assistant, crafted):
    assert render.article_html(mini_assistant.store, crafted) == '<div class="rag-article rag-missing">Article not found.</div>'


def test_article_view_highlights_the_cited_sentence(mini_assistant):
    a = mini_assistant.ask("Where is Zephyr Dynamics based?")
    c = a.citations[0]
    page = render.article_html(mini_assistant.store, c.doc_id, c.start, c.end)
    assert '<mark id="rag-highlight" class="rag-quote">Zephyr Dynamics, a maker of wind turbines, is based in Lakeview.</mark>' in page
    assert page.count("<mark") == 1


def test_sources_panel_marks_quote_and_escapes_article_text(tmp_path):
    e = KeywordEmbedder()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.txt").write_text("Harbor <script>alert(1)</script> news\n\nThe harbor parade drew <b>many</b> visitors.\n")
    build([tmp_path / "c"], tmp_path / "i", embedder=e)
    a = Assistant.load(tmp_path / "i", embedder=e)
    answer = a.ask("harbor parade visitors")
    html = render.sources_html(answer, a.store)
    assert "<script>" not in html and "&lt;b&gt;many&lt;/b&gt;" in html
    assert '<mark class="rag-quote" data-n="1">The harbor parade drew &lt;b&gt;many&lt;/b&gt; visitors.</mark>' in html
    assert "Harbor &lt;script&gt;" in html  # the title in the card's meta line, escaped
    chat = render.chat_html(answer, a.store)
    assert chat.endswith('<p class="rag-answer"><span class="rag-q">The harbor parade drew &lt;b&gt;many&lt;/b&gt; visitors.'
                         '</span> <a class="rag-cite-link" href="#turn-0-cite-1" title="Open source 1">[1]</a></p>')


class _Index:
    """A one-document store: what the renderers read (document texts, catalog entries)."""

    def __init__(self, *docs):
        self.docs = {d.doc_id: d for d in docs}

    def document(self, doc_id):
        return self.docs.get(doc_id)

    def info(self, doc_id):
        d = self.docs.get(doc_id)
        return d and DocInfo(d.doc_id, d.title, d.date, d.path, d.encoding, d.sha256, len(d.text), len(d.text.encode()), 1)


def _answered(outcome: str, confidence: float):
    """An answer quoting one sentence of a one-document index, with the given outcome."""
    from rag.types import Answer, Chunk, Citation, Document, Hit

    text = "Ferry news\n\nThe ferry <b>carries</b> 900 visitors a day. It sails at dawn.\n"
    quote = "The ferry <b>carries</b> 900 visitors a day."
    start = text.index(quote)
    doc = Document("ferry.txt", text, "0" * 64, title="Ferry news")
    cite = Citation(1, "ferry.txt", "Ferry news", None, start, start + len(quote), quote)
    hit = Hit(Chunk("c1", "ferry.txt", text[start:-1], start, len(text) - 1), 0.8125, 1)
    refused = outcome == "refuse"
    return Answer("How many visitors does the ferry carry?", "" if refused else quote + " [1]", refused,
                  () if refused else (cite,), (hit,), confidence=confidence, outcome=outcome), _Index(doc)


def test_confidence_is_said_in_words_with_the_number_on_hover():
    sure, index = _answered("answer", 0.8749)
    maybe, _ = _answered("possible", 0.4151)
    quote = ('<p class="rag-answer"><span class="rag-q">The ferry &lt;b&gt;carries&lt;/b&gt; 900 visitors a day.</span> '
             '<a class="rag-cite-link" href="#turn-0-cite-1" title="Open source 1">[1]</a></p>')
    assert render.chat_html(sure, index) == (
        '<p><span class="rag-confidence rag-answer" title="confidence 0.87">Confident answer</span></p>' + quote)
    assert render.chat_html(maybe, index) == (
        '<p><span class="rag-confidence rag-possible" title="confidence 0.42">Possible answer — check the source</span></p>'
        + quote)
    card = ('<div class="rag-card" id="cite-1"><div class="rag-label">[1]</div>'
            '<div class="rag-meta">Ferry news · undated · ferry.txt · passage score 0.812 · chars 12–56</div>'
            '<div class="rag-text">Ferry news\n\n<mark class="rag-quote" data-n="1">The ferry &lt;b&gt;carries&lt;/b&gt; 900 '
            'visitors a day.</mark> It sails at dawn.\n</div></div>')
    assert render.sources_html(sure, index) == (
        '<div class="rag-sources"><div class="rag-sources-head"><span class="rag-confidence rag-answer" '
        'title="confidence 0.87">Confident answer</span></div>' + card + "</div>")
    assert render.sources_html(maybe, index) == (
        '<div class="rag-sources"><div class="rag-sources-head"><span class="rag-confidence rag-possible" '
        'title="confidence 0.42">Possible answer — check the source</span></div>' + card + "</div>")


def test_a_refusal_has_no_confidence_badge():
    refused, index = _answered("refuse", 0.03)
    md = render.chat_html(refused, index)
    assert md == ("<p><strong>The articles don't say.</strong> I found no sentence that answers this, so I won't quote a "
                  "weak match.</p><p>Related passages (not an answer):</p><ul><li><em>Ferry news — ferry.txt</em>: "
                  '<span class="rag-q">The ferry &lt;b&gt;carries&lt;/b&gt; 900 visitors a day. It sails at dawn.</span>'
                  "</li></ul>")
    assert render.sources_html(refused, index) == (
        '<div class="rag-sources"><div class="rag-card rag-related"><div class="rag-label">Related passage 1 · not an '
        'answer</div><div class="rag-meta">Ferry news — ferry.txt · score 0.812</div><div class="rag-text">The ferry &lt;b&gt;carries'
        '&lt;/b&gt; 900 visitors a day. It sails at dawn.</div></div></div>')
    assert "rag-confidence" not in md


def test_abstention_is_labelled_as_related_not_an_answer(mini_assistant):
    a = mini_assistant.ask("Who won the 2018 FIFA World Cup?")
    assert render.chat_html(a, mini_assistant.store).startswith("<p><strong>The articles don't say.</strong>")
    assert render.sources_html(a, mini_assistant.store).count("not an answer") == 3


def test_details_show_ranks_and_the_searched_query(mini_assistant):
    a = mini_assistant.ask("And when?", history=["How many ovens does the bakery run?"])
    html = render.details_html(a)
    assert "Searched: <code>And when? How many ovens does the bakery run?</code>" in html
    assert html.count("<tr><td>") == 5


def test_examples_come_from_titles(mini_assistant):
    assert example_questions(mini_assistant.store) == [
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
        return Assistant.load(tmp_path / "i", embedder=e).store

    index_of(original)
    a = Assistant.load(tmp_path / "i", embedder=e)
    c = a.ask("Where is Zephyr Dynamics based?").citations[0]
    quote = "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview."
    assert (c.doc_id, c.quote) == ("alpha.txt", quote)
    cited = (c.doc_id, c.start, c.end, c.quote)
    mark = f'<mark id="rag-highlight" class="rag-quote">{quote}</mark>'
    assert render.citation_html(a.store, *cited) == render.article_html(a.store, "alpha.txt", c.start, c.end)

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


def test_a_refusal_opens_the_closest_passage_labelled_not_an_answer():
    refused, index = _answered("refuse", 0.03)
    page = render.answer_article_html(index, refused)
    assert page.startswith('<div class="rag-note rag-closest">Closest passage, not an answer: the articles don&#x27;t '
                           'answer this question.</div><div class="rag-article">')
    assert '<mark id="rag-highlight" class="rag-passage">The ferry &lt;b&gt;carries&lt;/b&gt;' in page
    assert "rag-quote" not in page
    sure, _ = _answered("answer", 0.9)
    assert render.answer_article_html(index, sure) == render.article_html(index, "ferry.txt", 12, 56)
    from dataclasses import replace
    assert render.answer_article_html(index, replace(refused, hits=())) == ""


def test_library_table_and_status_are_text_never_markup():
    from ui.library import Row

    rows = [Row("# [x](http://e).md", "<b>Big</b> news", "", 1.25, 3)]
    assert render.library_html(rows) == (
        '<table class="rag-library"><thead><tr><th>Article</th><th class="rag-num">KB</th><th class="rag-num">Passages'
        '</th></tr></thead><tbody><tr><td><div class="rag-lib-title">&lt;b&gt;Big&lt;/b&gt; news</div><div class="rag-meta">'
        '# [x](http://e).md · undated</div></td><td class="rag-num">1.2</td><td class="rag-num">3</td></tr></tbody></table>')
    assert render.text_html("Added a.txt.\n# [x](http://e).md: the file is empty") == \
        "<p>Added a.txt.</p><p># [x](http://e).md: the file is empty</p>"


def test_citation_choices_name_the_title_then_the_file():
    sure, _ = _answered("answer", 0.9)
    assert render.citation_choices(sure) == [("[1] Ferry news — ferry.txt", "1")]


def test_page_errors_speak_to_the_person_on_the_page():
    from rag.errors import DocumentNotFound, EmptyQuestion
    from ui.app import for_page

    assert for_page(EmptyQuestion()) == "The question has no words in it: type a question in words."
    assert for_page(DocumentNotFound("x.txt")) == "That document is no longer in the library; the list now shows what it holds."
    assert for_page(OSError(5, "Input/output error")) == ("Something went wrong on the server (OSError: [Errno 5] "
                                                          "Input/output error); nothing was changed, try again.")
    for e in (EmptyQuestion(), DocumentNotFound("x.txt")):
        assert "rag " not in for_page(e) and "rag " in str(e)  # the CLI's words name a command; the page's don't


def test_the_page_sees_a_library_changed_by_another_process(tmp_path, corpus):
    """Another server or `rag index` changed the index: the next request answers from the new one."""
    from fakes import KeywordEmbedder, rule_model
    from rag.pipeline import build
    from ui.app import Holder

    e = KeywordEmbedder()
    build([corpus], tmp_path / "idx", embedder=e)
    holder = Holder(tmp_path / "idx", e, rule_model())
    before = holder.current()
    assert holder.current() is before  # unchanged: no reload
    (corpus / "ferry.txt").write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n")
    build([corpus], tmp_path / "idx", embedder=KeywordEmbedder())  # as another process would
    now = holder.current()
    assert now is not before and "ferry.txt" in [d.doc_id for d in now.store.catalog()]
    assert now.ask("harbor ferry visitors").citations[0].doc_id == "ferry.txt"


def test_the_server_encodes_each_question_on_one_onnx_thread():
    """`rag serve` swaps the query encoder Assistant.load chose for a one-thread one over the same file;
    any other embedder (a fake here, sentence-transformers) is kept as it is."""
    import types

    from rag.embed import OnnxEmbedder
    from ui.app import _questions_on_one_thread

    reloads = []
    holder = types.SimpleNamespace(embedder=OnnxEmbedder("/models/m.onnx"), reload=lambda: reloads.append(1))
    _questions_on_one_thread(holder)
    assert (type(holder.embedder), holder.embedder.onnx_path, holder.embedder.threads, reloads) == (
        OnnxEmbedder, "/models/m.onnx", 1, [1])
    fake = KeywordEmbedder()
    holder = types.SimpleNamespace(embedder=fake, reload=lambda: reloads.append(2))
    _questions_on_one_thread(holder)
    assert holder.embedder is fake and reloads == [1]
