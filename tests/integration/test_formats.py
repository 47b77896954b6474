"""The real model over the seed articles plus a web page and a two-column PDF: answers cite the page
and the PDF's page, and quote the extracted text exactly."""
import shutil

from conftest import SEEDS
from test_formats import PAGE_HTML, lighthouse_pdf


def test_real_model_cites_the_web_page_and_the_pdf_page(tmp_path, real_embedder):
    from rag.pipeline import Assistant, build

    corpus = tmp_path / "corpus"
    shutil.copytree(SEEDS, corpus)
    (corpus / "ferry.html").write_text(PAGE_HTML, encoding="utf-8")
    lighthouse_pdf(corpus / "lighthouse.pdf")
    report = build([corpus], tmp_path / "idx", embedder=real_embedder)
    assert report.warnings == []
    a = Assistant.load(tmp_path / "idx", embedder=real_embedder)
    got = []
    for question in ("When did a storm break the lighthouse lamp?",
                     "How many passengers did the harbor ferry carry on its first trip?",
                     "When was the lamp of the lighthouse replaced by an electric beacon?"):
        answer = a.ask(question)
        assert answer.outcome != "refuse", question
        c = answer.citations[0]
        assert a.store.document(c.doc_id).text[c.start:c.end] == c.quote
        got.append((c.doc_id, c.page, c.url, c.quote[:20]))
    assert got == [("lighthouse.pdf", 2, None, "In 1953 a storm brok"),
                   ("ferry.html", None, "https://news.example.com/2023/07/harbor-ferry", "The harbor ferry bet"),
                   ("lighthouse.pdf", 3, None, "The lamp was replace")]
