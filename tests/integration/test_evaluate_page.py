"""The Evaluate tab and the take-away buttons in a real Chromium, against the real Gradio server in this
process, over the mini corpus with the keyword embedder and the hand-set answer model (tests/fakes.py),
so every figure and answer is known from evals.run and the pipeline themselves."""
from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from browser import ARGS, chromium
from conftest import DATA, MINI
from integration.test_page import WIDE, ask, free_port

ROOT = Path(__file__).resolve().parents[2]
LATENCY = ("latency_p50_ms", "latency_p95_ms")
ZEPHYR = "Where is Zephyr Dynamics based?"


def serve(tmp_path, index, embedder, model, question_set):
    from ui.app import build_app, launch_options

    demo = build_app(index, embedder=embedder, library_dir=tmp_path / "library", model=model, question_set=question_set)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, **launch_options())
    return demo, f"http://127.0.0.1:{port}/"


@pytest.fixture
def site(tmp_path):
    """The page over the mini corpus, offering tests/data/questions_mini.jsonl as its question set."""
    executable = chromium()
    from fakes import KeywordEmbedder, rule_model
    from rag.pipeline import Assistant, build

    embedder = KeywordEmbedder()
    build([MINI], tmp_path / "idx", embedder=embedder)
    demo, url = serve(tmp_path, tmp_path / "idx", embedder, rule_model(), DATA / "questions_mini.jsonl")
    try:
        yield {"url": url, "chromium": executable, "tmp": tmp_path, "index": tmp_path / "idx",
               "assistant": Assistant.load(tmp_path / "idx", embedder=embedder, model=rule_model())}
    finally:
        demo.close()


@pytest.fixture
def context(site):
    """A browser context that may read and write the clipboard and download files."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=site["chromium"], headless=True, args=ARGS)
        ctx = b.new_context(viewport=WIDE, accept_downloads=True)
        ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=site["url"].rstrip("/"))
        yield ctx
        b.close()


def open_page(context, site):
    page = context.new_page()
    page.goto(site["url"])
    page.locator("#rag-question textarea").wait_for()
    return page


def evaluate_tab(page):
    page.get_by_role("tab", name="Evaluate").click()
    page.locator("#rag-eval-run").wait_for()


def table(page, selector: str) -> dict[str, list[str]]:
    """Row header -> the row's cells, as the page shows them."""
    rows = page.locator(f"{selector} tbody tr")
    return {rows.nth(i).locator("th").inner_text(): rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())}


def mixed_set(tmp_path) -> Path:
    """questions_mini with m2's gold a number the parade article lacks: a confident, wrong answer."""
    rows = [json.loads(line) for line in (DATA / "questions_mini.jsonl").read_text().splitlines()]
    rows[1]["answers"] = ["40,000"]
    out = tmp_path / "upload" / "mixed set.jsonl"
    out.parent.mkdir()
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


# ------------------------------------------------------------------------------------------ Evaluate

def test_the_evaluate_tab_runs_the_mini_set_and_shows_the_figures_of_evals_run(site, context):
    from playwright.sync_api import expect

    from evals import formats, run

    page = open_page(context, site)
    evaluate_tab(page)
    page.locator("#rag-eval-run").click()
    page.locator("#rag-eval-summary").wait_for(timeout=60_000)
    records, summary, _ = run.evaluate(site["assistant"], formats.load(DATA / "questions_mini.jsonl"), site["index"])
    shown = table(page, "#rag-eval-summary")
    assert list(shown) == [k for k in run.TABLE_KEYS if k in summary]
    assert {k: v for k, v in shown.items() if k not in LATENCY} == {
        k: [run.fmt(summary[k])] for k in run.TABLE_KEYS if k in summary and k not in LATENCY}
    assert table(page, "#rag-eval-types") == {t: [run.fmt(v.get(k)) for k in run.GROUP_KEYS]
                                              for t, v in run.by_type(records).items()}
    assert table(page, "#rag-eval-splits") == {k: [run.fmt(run.by_split(records)[s].get(k)) for s in ("heldout", "tune")]
                                               for k in run.GROUP_KEYS}
    for i in range(3):
        expect(page.locator(f"#rag-eval-plot-{i} img")).to_be_visible()
    expect(page.locator("#rag-eval-misses-box")).to_have_text("No misses: every question was handled right.")
    links = page.locator("#rag-eval-files a")
    expect(links).to_have_count(3)
    assert [h.rsplit("/", 1)[-1] for h in (links.nth(i).get_attribute("href") for i in range(3))] == [
        "predictions.jsonl", "report.md", "report.zip"]
    with page.expect_download() as download:
        links.first.click()
    rows = [json.loads(line) for line in Path(download.value.path()).read_text().splitlines()]
    assert [r["id"] for r in rows] == ["m1", "m2", "m3", 4, 5, "m6"]
    assert [{**r, "timings_ms": None} for r in rows] == [{**r["prediction"], "timings_ms": None} for r in records]


def test_a_worst_miss_opens_its_answer_and_its_source_in_the_article_view(site, context):
    from playwright.sync_api import expect

    page = open_page(context, site)
    evaluate_tab(page)
    page.locator("#rag-eval-file input[type=file]").set_input_files(str(mixed_set(site["tmp"])))
    expect(page.locator("#rag-eval-set input[value=upload]")).to_be_checked()
    page.locator("#rag-eval-run").click()
    misses = page.locator("#rag-eval-misses a.rag-miss-link")
    expect(misses).to_have_count(1, timeout=60_000)
    assert page.locator("#rag-eval-summary-box .rag-eval-head").inner_text().startswith("6 questions of mixed set.jsonl")
    misses.first.click()
    parade = "The harbor parade drew 30,000 visitors on Sunday."
    panel = page.locator("#rag-eval-miss")
    expect(panel).to_contain_text("How many visitors came to the harbor parade?")
    expect(panel).to_contain_text("Expected: 40,000.")
    expect(panel.locator(".rag-q")).to_have_text(parade)
    highlight = page.locator("#rag-eval-article #rag-highlight")
    expect(highlight).to_have_text(parade)
    expect(highlight).to_have_class("rag-quote")
    page.locator("#rag-eval-article .rag-article-title").wait_for()
    assert page.locator("#rag-eval-article .rag-meta").first.inner_text().endswith("sub/gamma.txt")
    panel.locator("a.rag-miss-gold").click()  # the expected source: its evidence, marked as a passage
    expect(highlight).to_have_class("rag-passage")
    panel.locator("a.rag-cite-link", has_text="[1]").click()
    expect(highlight).to_have_class("rag-quote")
    expect(highlight).to_be_in_viewport()
    assert page.locator("#rag-article #rag-highlight").count() == 0  # the chat's article view is untouched


def test_a_chat_question_is_answered_while_an_evaluation_runs(site, context, monkeypatch):
    """The evaluation is held inside its second question until the chat has answered: were the chat
    queued behind it, the answer would never come and the test would time out."""
    from playwright.sync_api import expect

    from evals import run

    release, held = threading.Event(), threading.Event()
    score_one = run.score_one

    def slow(assistant, q, *args):
        if q.id == "m2":
            held.set()
            release.wait(120)
        return score_one(assistant, q, *args)

    monkeypatch.setattr(run, "score_one", slow)
    page = open_page(context, site)
    evaluate_tab(page)
    page.locator("#rag-eval-run").click()
    assert held.wait(60)
    expect(page.get_by_text("Asking the questions").first).to_be_visible()  # the progress bar
    page.get_by_role("tab", name="Chat").click()
    bot = ask(page, ZEPHYR, 1)
    expect(bot.locator(".rag-q")).to_have_text("Zephyr Dynamics, a maker of wind turbines, is based in Lakeview.")
    assert not release.is_set() and page.locator("#rag-eval-summary").count() == 0  # still running
    release.set()
    page.get_by_role("tab", name="Evaluate").click()
    page.locator("#rag-eval-summary").wait_for(timeout=60_000)


# ------------------------------------------------------------------------------------------ take-away

def test_copy_answer_with_sources_puts_the_take_away_markdown_on_the_clipboard(site, context):
    from playwright.sync_api import expect

    from rag.takeaway import answer_markdown

    page = open_page(context, site)
    expect(page.locator("#rag-copy")).to_be_disabled()  # nothing to copy yet
    ask(page, ZEPHYR, 1)
    page.locator("#rag-copy").click()
    expect(page.locator("#rag-copy-status")).to_have_text("Copied the answer with its sources as Markdown.")
    assert page.evaluate("navigator.clipboard.readText()") == (
        "Zephyr Dynamics, a maker of wind turbines, is based in Lakeview. [1]\n\n"
        "Confidence 0.98\n\nSources:\n\n"
        "1. Zephyr Dynamics opens a turbine plant in Lakeview — alpha.txt, characters 70–134")
    ask(page, "How much ice did the glacier lose?", 2)  # the latest answer is the one copied
    page.locator("#rag-copy").click()
    expected = answer_markdown(site["assistant"].ask("How much ice did the glacier lose?", history=[ZEPHYR]).to_dict())
    expect(page.locator("#rag-copy-status")).to_have_text("Copied the answer with its sources as Markdown.")
    assert page.evaluate("navigator.clipboard.readText()") == expected
    assert expected.startswith("Last summer the glacier lost 2.4 meters of ice. [1]")


def test_download_conversation_saves_each_turn_as_rag_ask_json_or_as_markdown(site, context):
    from rag.takeaway import conversation_markdown

    page = open_page(context, site)
    ask(page, ZEPHYR, 1)
    ask(page, "Who won the 2018 FIFA World Cup?", 2)
    with page.expect_download() as download:
        page.locator("#rag-download-json").click()
    assert download.value.suggested_filename == "conversation.json"
    turns = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    a = site["assistant"]
    expected = [a.ask(ZEPHYR).to_dict(), a.ask("Who won the 2018 FIFA World Cup?", history=[ZEPHYR]).to_dict()]
    assert [list(t) for t in turns] == [list(e) for e in expected]  # the schema of `rag ask --json`, in its order
    assert [{**t, "timings_ms": None} for t in turns] == [{**e, "timings_ms": None} for e in expected]
    assert [t["outcome"] for t in turns] == ["answer", "refuse"]
    with page.expect_download() as download:
        page.locator("#rag-download-md").click()
    assert download.value.suggested_filename == "conversation.md"
    assert Path(download.value.path()).read_text(encoding="utf-8") == conversation_markdown(turns)


# ------------------------------------------------------------------------------------------ screenshot

def test_screenshot_of_the_evaluate_tab(tmp_path, seed_index, real_embedder):
    """Our question set on the seeds with the real model and answer model, a miss opened. With
    RAG_SCREENSHOTS=docs it writes docs/evaluate.png; otherwise it checks the tab renders the run."""
    from playwright.sync_api import expect, sync_playwright

    executable = chromium()
    demo, url = serve(tmp_path, seed_index, real_embedder, None, ROOT / "evals" / "questions.jsonl")
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=executable, headless=True, args=ARGS)
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            evaluate_tab(page)
            page.locator("#rag-eval-run").click()
            page.locator("#rag-eval-summary").wait_for(timeout=300_000)
            assert table(page, "#rag-eval-summary")["questions"] == ["167"]
            page.locator("#rag-eval-misses a.rag-miss-link").first.click()
            expect(page.locator("#rag-eval-article .rag-article")).to_be_visible()
            page.wait_for_timeout(1000)  # plots and the article settle
            shot = tmp_path / "evaluate.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 50_000
            if os.environ.get("RAG_SCREENSHOTS"):
                shutil.copy(shot, ROOT / os.environ["RAG_SCREENSHOTS"] / shot.name)
            b.close()
    finally:
        demo.close()
