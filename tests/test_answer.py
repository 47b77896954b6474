import json
import math

import numpy as np
import pytest

from conftest import MINI
from rag.config import Settings
from rag.errors import EmptyQuestion
from rag.pipeline import Assistant, contextualize


def check_citations(mini_assistant, answer):
    for c in answer.citations:
        doc = mini_assistant.index.document(c.doc_id)
        assert doc.text[c.start:c.end] == c.quote


def test_answer_quotes_the_right_sentence_with_exact_offsets(mini_assistant):
    a = mini_assistant.ask("Where is Zephyr Dynamics based?")
    assert not a.abstained
    assert a.text == "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview. [1]"
    c = a.citations[0]
    text = (MINI / "alpha.txt").read_text(encoding="utf-8")
    assert (c.n, c.doc_id, c.start, c.end) == (1, "alpha.txt", text.index("Zephyr Dynamics, a maker"), text.index(" The company was"))
    assert (c.title, c.date) == ("Zephyr Dynamics opens a turbine plant in Lakeview", "2021-03-03")
    check_citations(mini_assistant, a)


def test_anaphoric_sentence_brings_its_antecedent(mini_assistant):
    a = mini_assistant.ask("When were the ovens imported from Naples?", k=2)
    quotes = [c.quote for c in a.citations]
    # "They were imported from Naples in 2015." matches the terms best but says nothing without
    # the sentence before it, which names the ovens; that one becomes [2]
    assert quotes[:2] == ["They were imported from Naples in 2015.", "The bakery runs three stone ovens."]
    check_citations(mini_assistant, a)


def test_off_topic_question_abstains_but_keeps_passages(mini_assistant):
    a = mini_assistant.ask("Who won the 2018 FIFA World Cup?")
    assert a.abstained and a.text == "" and a.citations == ()
    assert len(a.hits) == 5
    d = a.to_dict()
    assert d["abstained"] is True and d["answer"] == "" and d["citations"] == [] and len(d["passages"]) == 5


@pytest.fixture(scope="module")
def answers_everything(mini_assistant):
    """The mini corpus with no abstention, so every question is answered and what it cites shows."""
    return Assistant(mini_assistant.index, mini_assistant.embedder, Settings(abstain_below=0.0))


@pytest.mark.parametrize("q, cited", [
    # each question repeats a boilerplate line (footer, lone "App", photo caption, repeated headline)
    # word for word, so that line would be the best match were it a candidate; a body sentence is cited
    ("Copyright example.com About us Contact us", None),
    ("App", None),
    ("Photo Jane Doe GT turbine blade", "The new plant will build 400 turbines a year."),
    ("Workers assemble a turbine blade in Lakeview", "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview."),
    ("Harbor parade draws crowds Parade Harbor", "The harbor parade drew 30,000 visitors on Sunday."),
])
def test_boilerplate_is_never_cited(answers_everything, q, cited):
    a = answers_everything.ask(q)
    assert not a.abstained and a.citations
    if cited:
        assert a.citations[0].quote == cited
    for c in a.citations:
        doc = answers_everything.index.document(c.doc_id)
        assert not [b for b in doc.blocks if b.kind != "body" and b.start < c.end and c.start < b.end]
        assert "Copyright" not in c.quote and "Photo:" not in c.quote and " | " not in c.quote and c.quote != "App"
    check_citations(answers_everything, a)


def test_numbers_are_told_apart(mini_assistant):
    a = mini_assistant.ask("Which figure grew 18.2 percent at Zephyr's plant?")
    assert a.citations[0].quote == "Output at the plant grew 17.1 percent last year, while exports grew 18.2 percent."


def test_schema_is_exact(mini_assistant):
    d = mini_assistant.ask("harbor parade visitors", k=3).to_dict()
    assert list(d) == ["question", "answer", "abstained", "citations", "passages", "timings_ms"]
    assert list(d["citations"][0]) == ["n", "source", "title", "date", "start", "end", "quote", "encoding"]
    assert list(d["passages"][0]) == ["rank", "source", "start", "end", "score", "text", "encoding"]
    assert list(d["timings_ms"]) == ["embed", "retrieve", "answer", "total"]
    assert [p["rank"] for p in d["passages"]] == [1, 2, 3]
    assert d["citations"][0]["source"] == "sub/gamma.txt"
    assert d["answer"].endswith("[1]") and json.loads(json.dumps(d)) == d


@pytest.mark.parametrize("q", ["", "   ", "\x00\x01", "?!...", "\n\t"])
def test_empty_questions_raise(mini_assistant, q):
    with pytest.raises(EmptyQuestion) as e:
        mini_assistant.ask(q)
    assert isinstance(e.value, ValueError)


def test_k_limits_passages(mini_assistant):
    assert len(mini_assistant.ask("glacier", k=2).hits) == 2
    assert len(mini_assistant.ask("glacier", k=100).hits) == 7  # the whole corpus has 7 passages


def test_abstention_flips_exactly_at_the_threshold(mini_assistant):
    q = "Where is Zephyr Dynamics based?"
    # [1] is "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview.": cosine 1/√3 (the question's
    # one keyword, zephyr, against zephyr + turbine + lakeview), all three question terms (coverage 1),
    # passage rank 1, and a place for "where": 0.6/√3 + 0.5·1 + 0.05/1 + 0.1 = 0.996410
    score = mini_assistant.ask(q).confidence
    assert score == pytest.approx(0.6 / math.sqrt(3) + 0.5 + 0.05 + 0.1, abs=1e-7)

    def ask(threshold):
        return Assistant(mini_assistant.index, mini_assistant.embedder, Settings(abstain_below=threshold)).ask(q)

    at, above = ask(score), ask(float(np.nextafter(score, np.inf)))
    assert not at.abstained and at.text == "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview. [1]"
    assert above.abstained and above.text == "" and above.citations == () and len(above.hits) == 5
    assert at.confidence == above.confidence == score


def test_follow_up_carries_the_subject():
    # a new name replaces the previous question's names ("Hefei's"); acronyms such as R&D are kept
    assert contextualize("And Wuhu?", ["What is Hefei's R&D intensity?"]) == "And Wuhu? What is R&D intensity?"
    assert contextualize("Who runs it?", ["What is USTC Silicon Valley?"]) == "Who runs it? What is USTC Silicon Valley?"
    assert contextualize("Where is iFlytek based?", ["What is SparkDesk?"]) == "Where is iFlytek based?"
    assert contextualize("And Wuhu?", []) == "And Wuhu?"


def test_follow_up_answer_uses_history(mini_assistant):
    a = mini_assistant.ask("And when were they imported?", history=["How many ovens does the bakery run?"])
    assert a.searched == "And when were they imported? How many ovens does the bakery run?"
    assert a.citations[0].doc_id == "beta.md"


def test_complete_adds_the_next_sentence_holding_the_asked_kind(mini_assistant):
    idx = mini_assistant.index
    rows = {idx.sentence_text(r): r for r in range(len(idx.sentences))}
    first = rows["Zephyr Dynamics, a maker of wind turbines, is based in Lakeview."]
    answerer = mini_assistant.answerer
    # "who" asks for a name; [1] names only the company the question already names, and the next
    # sentence of its section names a person and shares "founded"/"company" with the question
    got = answerer.complete("Who founded the company Zephyr Dynamics?", [first])
    assert [idx.sentence_text(r) for r in got] == [
        "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview.", "The company was founded in 2009 by Mara Quill."]
    # no asked-for kind, or [1] already holds it: nothing is added
    assert answerer.complete("Zephyr Dynamics", [first]) == [first]
    assert answerer.complete("Where is Zephyr Dynamics based?", [first]) == [first]
