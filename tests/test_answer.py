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
        doc = mini_assistant.store.document(c.doc_id)
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
    return Assistant(mini_assistant.store, mini_assistant.embedder, Settings(min_confidence=0.0), model=mini_assistant.answerer.model)


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
        doc = answers_everything.store.document(c.doc_id)
        assert not [b for b in doc.blocks if b.kind != "body" and b.start < c.end and c.start < b.end]
        assert "Copyright" not in c.quote and "Photo:" not in c.quote and " | " not in c.quote and c.quote != "App"
    check_citations(answers_everything, a)


def test_numbers_are_told_apart(mini_assistant):
    a = mini_assistant.ask("Which figure grew 18.2 percent at Zephyr's plant?")
    assert a.citations[0].quote == "Output at the plant grew 17.1 percent last year, while exports grew 18.2 percent."


def test_schema_is_exact(mini_assistant):
    d = mini_assistant.ask("harbor parade visitors", k=3).to_dict()
    assert list(d) == ["question", "answer", "abstained", "outcome", "confidence", "citations", "passages", "timings_ms"]
    assert d["outcome"] in ("answer", "possible") and 0.0 <= d["confidence"] <= 1.0
    assert list(d["citations"][0]) == ["n", "source", "title", "date", "start", "end", "quote", "encoding", "page", "url"]
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


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def test_refusal_flips_exactly_at_min_confidence_and_possible_below_confident(mini_assistant):
    q = "Where is Zephyr Dynamics based?"
    # [1] is "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview.": cosine 1/√3 (the question's
    # one keyword, zephyr, against zephyr + turbine + lakeview), all three question terms (lex 1), passage
    # rank 1, and a place for "where". The test model (fakes.rule_model) gives it
    # p = sigmoid(4/√3 + 6·1 + 1 + 0.5·1 − 5) and the question confidence sigmoid(8p − 4).
    p = sigmoid(4 / math.sqrt(3) + 6 + 1 + 0.5 - 5)
    conf = mini_assistant.ask(q).confidence
    assert conf == pytest.approx(sigmoid(8 * p - 4), abs=1e-7)  # float32 cosines

    def ask(**settings):
        return Assistant(mini_assistant.store, mini_assistant.embedder, Settings(**settings),
                         model=mini_assistant.answerer.model).ask(q)

    at, above = ask(min_confidence=conf), ask(min_confidence=float(np.nextafter(conf, np.inf)))
    assert not at.abstained and at.text == "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview. [1]"
    assert above.abstained and above.outcome == "refuse" and above.text == "" and above.citations == () and len(above.hits) == 5
    assert at.confidence == above.confidence == conf
    # the same quote is a confident answer from `confident` up, a possible answer below it
    assert ask(min_confidence=0.1, confident=conf).outcome == "answer"
    possible = ask(min_confidence=0.1, confident=float(np.nextafter(conf, np.inf)))
    assert possible.outcome == "possible" and not possible.abstained and possible.text == at.text


def test_features_of_a_candidate_are_exact(mini_assistant):
    from rag.answer import candidates

    idx = mini_assistant.store.index  # the local store's generation: sentence rows by position
    q = "Where is Zephyr Dynamics based?"
    qvec = mini_assistant.embed_query(q)
    c = candidates(mini_assistant.store, q, mini_assistant.retriever.search(q, qvec, 5), qvec)
    first = [i for i, r in enumerate(c.rows) if idx.sentence_text(int(r)).startswith("Zephyr Dynamics, a maker")][0]
    x = {n: c.feature(n)[first] for n in ("sem", "lex", "lent", "rare", "focus", "offers", "numbers", "inv_rank", "neighbour", "lead")}
    assert x == pytest.approx({"sem": 1 / math.sqrt(3), "lex": 1.0, "lent": 0.0, "rare": 1.0, "focus": 1.0, "offers": 1.0,
                               "numbers": 0.0, "inv_rank": 1.0, "neighbour": 0.0, "lead": 1.0})
    # "The company was founded in 2009 by Mara Quill." holds neither name the question asks about
    founded = [i for i, r in enumerate(c.rows) if idx.sentence_text(int(r)).startswith("The company was founded")][0]
    assert c.feature("focus")[founded] == 1.0  # ... but the sentence before it does, which counts
    assert c.kind == "place" and c.q_terms == {"zephyr", "dynam", "base"}
    # the sentence after a retrieved passage is a candidate too, marked as a neighbour
    hits = mini_assistant.retriever.search(q, qvec, 1)
    c1 = candidates(mini_assistant.store, q, hits, qvec)
    inside = set(mini_assistant.store.passage_sentences(hits[0].chunk.pid))
    outside = [i for i, r in enumerate(c1.rows) if int(r) not in inside]
    assert len(outside) == 1 and c1.feature("neighbour")[outside[0]] == 1.0
    assert int(c1.rows[outside[0]]) == max(inside) + 1


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
    from rag.answer import candidates

    idx = mini_assistant.store.index  # the local store's generation: sentence rows by position
    rows = {idx.sentence_text(r): r for r in range(len(idx.sentences))}
    first = rows["Zephyr Dynamics, a maker of wind turbines, is based in Lakeview."]
    answerer = mini_assistant.answerer

    def complete(q):
        qvec = mini_assistant.embed_query(q)
        return answerer.complete(candidates(mini_assistant.store, q, mini_assistant.retriever.search(q, qvec, 5), qvec), [first])
    # "who" asks for a name; [1] names only the company the question already names, and the next
    # sentence of its section names a person and shares "founded"/"company" with the question
    assert [idx.sentence_text(r) for r in complete("Who founded the company Zephyr Dynamics?")] == [
        "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview.", "The company was founded in 2009 by Mara Quill."]
    # no asked-for kind, or [1] already holds it: nothing is added
    assert complete("Zephyr Dynamics") == [first]
    assert complete("Where is Zephyr Dynamics based?") == [first]


def test_logistic_fit_is_deterministic_and_round_trips_through_json(tmp_path):
    from fakes import rule_model
    from rag.answer import AnswerModel, Logistic

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = (X[:, 0] - 0.5 * X[:, 1] + rng.normal(scale=0.5, size=400) > 0).astype(float)
    a, b = Logistic.fit(("u", "v"), X, y), Logistic.fit(("u", "v"), X, y)
    assert np.array_equal(a.coef, b.coef) and a.coef[0] > 0 > a.coef[1] and abs(a.coef[0]) > abs(a.coef[1])
    # the fitted probabilities are calibrated on the data they came from: their mean is the base rate
    assert a.prob(X).mean() == pytest.approx(y.mean(), abs=0.01)
    m = rule_model()
    m.save(tmp_path / "m.json")
    back = AnswerModel.load(tmp_path / "m.json")
    assert back.sentence.names == m.sentence.names and np.array_equal(back.sentence.coef, m.sentence.coef)
    assert (back.min_confidence, back.confident, back.meta) == (0.5, 0.8, {"test": True})


def test_a_missing_or_foreign_model_file_says_how_to_rebuild_it(tmp_path):
    from fakes import rule_model
    from rag.answer.model import AnswerModel, AnswerModelMissing

    with pytest.raises(AnswerModelMissing, match="is missing: reinstall rag, or rebuild it with `python -m evals.train`"):
        AnswerModel.load(tmp_path / "none.json")
    rule_model().save(tmp_path / "m.json")
    d = json.loads((tmp_path / "m.json").read_text())
    d["sentence"]["features"][0] = "something_else"
    (tmp_path / "m.json").write_text(json.dumps(d))
    with pytest.raises(AnswerModelMissing, match="was made for other features"):
        AnswerModel.load(tmp_path / "m.json")


def test_the_shipped_model_loads_and_records_its_training():
    from rag.answer import AnswerModel

    m = AnswerModel.load()
    assert 0.0 <= m.min_confidence <= m.confident <= 1.0
    assert m.meta.get("command", "").startswith("python -m evals.train")
    assert {"squad", "wikiqa", "own"} <= set(m.meta["held_out"])


def test_the_answer_and_its_confidence_do_not_depend_on_k(mini_assistant):
    """The answer model reads the top five passages whatever k is; k only sets how many are returned."""
    answers = {k: mini_assistant.ask("When were the ovens imported from Naples?", k=k) for k in (1, 2, 5, 20)}
    assert [len(a.hits) for a in answers.values()] == [1, 2, 5, 7]  # the mini corpus has 7 passages
    assert len({(a.text, a.confidence, a.outcome) for a in answers.values()}) == 1


def test_max_chars_bounds_the_answer_text_with_its_markers(mini_assistant):
    def ask(max_chars):
        return Assistant(mini_assistant.store, mini_assistant.embedder, Settings(max_chars=max_chars, min_confidence=0.0),
                         model=mini_assistant.answerer.model).ask("When were the ovens imported from Naples?", k=2)
    # each quote is counted with its marker and a joining space: "They were imported from Naples in 2015."
    # 39 + 5, "The bakery runs three stone ovens." 34 + 5: 83 (the text itself is 82, the first needing no space)
    both = ask(83)
    assert len(both.text) == 82 and len(both.citations) == 2
    one = ask(82)
    assert one.text == "They were imported from Naples in 2015. [1]"


def test_a_sentence_about_another_name_or_figure_is_marked_swapped():
    from rag.answer.candidates import swapped
    from rag.text import focus_terms, numbers, tokenize

    def swap(question, sentence, before=""):
        q = frozenset(tokenize(question))
        held = (frozenset(tokenize(sentence)) | frozenset(tokenize(before))) & q
        return swapped(sentence, numbers(sentence), held, q, (focus_terms(question) & q) - numbers(question), numbers(question))

    # the question's name is missing and the sentence names someone else: another entity
    assert swap("Who founded Boreal Dynamics?", "The company was founded in 2009 by Mara Quill.") == (1.0, 0.0)
    # ... unless the sentence before names it (its subject)
    assert swap("Who founded Boreal Dynamics?", "The company was founded in 2009 by Mara Quill.",
                "Boreal Dynamics is based in Lakeview.") == (0.0, 0.0)
    # a sentence naming nobody may be a paraphrase: not counted
    assert swap("Who founded Boreal Dynamics?", "The company was founded in 2009.") == (0.0, 0.0)
    # another year than the question's, and another figure
    assert swap("How many turbines did the plant build in 2022?", "The plant built 400 turbines in 2021.") == (0.0, 1.0)
    assert swap("How many turbines did the plant build in 2,022?", "The plant built 400 turbines in 2022.") == (0.0, 0.0)
    assert swap("How many turbines did the plant build in 2022?", "The plant built many turbines.") == (0.0, 0.0)


def test_question_features_mark_a_negated_question_and_swapped_best_sentence(mini_assistant):
    from rag.answer import question_features
    from rag.answer.candidates import QUESTION_FEATURES, candidates

    def features(q):
        qvec = mini_assistant.embed_query(q)
        c = candidates(mini_assistant.store, q, mini_assistant.retriever.search(q, qvec, 5), qvec)
        p = mini_assistant.answerer.model.sentence.prob(c.X)
        return dict(zip(QUESTION_FEATURES, question_features(c, p)))

    plain = features("Where is Zephyr Dynamics based?")
    assert (plain["swap_name1"], plain["swap_number1"], plain["negated1"]) == (0.0, 0.0, 0.0)
    assert features("Where is Zephyr Dynamics not based?")["negated1"] == 1.0
    assert features("How many turbines a year will the new plant build in 2030?")["swap_number1"] == 1.0
