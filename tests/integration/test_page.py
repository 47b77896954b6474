"""The chat page in a real Chromium, against the real Gradio server in this process.

The server runs over a small corpus written here, with the keyword embedder and the hand-set answer
model of tests/fakes.py, so every answer is known in advance. Each sentence of the corpus holds
something a Markdown renderer would change: the page must show it as the article has it.
"""
from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from browser import ARGS, chromium

ROOT = Path(__file__).resolve().parents[2]
WIDE, PHONE = {"width": 1400, "height": 900}, {"width": 390, "height": 844}

# One sentence per hazard, each found by its own keywords (see fakes.KEYWORDS).
HAZARDS = {
    "math": ("zephyr turbine formula", "The zephyr turbine formula is $$E = m c^2$$ as printed."),
    "url": ("lakeview plant page", "The lakeview plant page is at https://example.com/plant_(new)?a=1&b=2 today."),
    "entity": ("bakery oven sign", "The bakery oven sign read &lt;img src=x onerror=alert(1)&gt; in plain text."),
    "markdown": ("glacier ice report", "The glacier **ice** report uses [brackets](http://x.y) and \\backslashes\\ too."),
}
FILLER = "\n\n".join(f"Paragraph {i} of the long town history has nothing to add." for i in range(60))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_corpus(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "zephyr.md").write_text("# Zephyr turbine notes\n\n" + "\n\n".join(q for _, q in HAZARDS.values()) + "\n",
                                    encoding="utf-8")
    # The cited sentence comes after a long stretch of text: below the fold unless scrolled to.
    (root / "harbor.txt").write_text("Harbor parade\n\n" + FILLER + "\n\nThe harbor parade drew 5,000 visitors on Sunday.\n",
                                     encoding="utf-8")
    (root / "crumb.txt").write_text("Crumb and Co\n\nThe sourdough bakery opened in Naples in 1998.\n", encoding="utf-8")
    return root


@pytest.fixture
def site(tmp_path):
    """A running page over a fresh copy of the corpus: (url, index_dir, library_dir)."""
    executable = chromium()
    from fakes import KeywordEmbedder, rule_model
    from rag.pipeline import build
    from ui.app import build_app, launch_options

    corpus = write_corpus(tmp_path / "corpus")
    embedder = KeywordEmbedder()
    build([corpus], tmp_path / "idx", embedder=embedder)
    demo = build_app(tmp_path / "idx", embedder=embedder, library_dir=tmp_path / "library", model=rule_model())
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, **launch_options())
    try:
        yield {"url": f"http://127.0.0.1:{port}/", "index": tmp_path / "idx", "library": tmp_path / "library",
               "corpus": corpus, "chromium": executable, "tmp": tmp_path}
    finally:
        demo.close()


@pytest.fixture
def browser(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=site["chromium"], headless=True, args=ARGS)
        yield b
        b.close()


def open_page(browser, site, viewport=WIDE):
    page = browser.new_page(viewport=viewport)
    page.goto(site["url"])
    page.locator("#rag-question textarea").wait_for()
    return page


def ask(page, question: str, answers: int):
    """Ask and wait for the ``answers``-th answer of the conversation; returns its message."""
    from playwright.sync_api import expect

    page.locator("#rag-question textarea").fill(question)
    page.locator("#rag-ask").click()
    bots = page.locator("#rag-chat .message.bot")
    expect(bots).to_have_count(answers, timeout=30_000)
    bot = bots.nth(answers - 1)
    expect(bot).not_to_have_text("", timeout=30_000)
    return bot


def source_slice(site, doc_id: str, quote: str) -> str:
    text = (site["corpus"] / doc_id).read_text(encoding="utf-8")
    at = text.index(quote)
    return text[at:at + len(quote)]


# ------------------------------------------------------------------------------------------ quotes

@pytest.mark.parametrize("hazard", sorted(HAZARDS))
def test_a_quote_shows_word_for_word_in_all_three_panels(site, browser, hazard):
    question, sentence = HAZARDS[hazard]
    page = open_page(browser, site)
    bot = ask(page, question, 1)
    exact = source_slice(site, "zephyr.md", sentence)
    assert bot.locator(".rag-q").first.inner_text() == exact
    assert page.locator("#rag-sources mark.rag-quote").first.inner_text() == exact
    assert page.locator("#rag-article #rag-highlight").inner_text() == exact
    # nothing in the quote became markup: no math, image, emphasis or link but the [n] links themselves
    assert bot.locator(".katex, img, strong, em, code").count() == 0
    assert bot.locator("a").count() == bot.locator("a.rag-cite-link").count()


# ------------------------------------------------------------------------------------------ citations

def test_n_opens_its_citation_with_the_sentence_in_view_even_in_an_earlier_answer(site, browser):
    from playwright.sync_api import expect

    page = open_page(browser, site)
    first = ask(page, "harbor parade visitors", 1)
    harbor = "The harbor parade drew 5,000 visitors on Sunday."
    ask(page, "sourdough bakery naples", 2)
    bakery = "The sourdough bakery opened in Naples in 1998."
    highlight = page.locator("#rag-article #rag-highlight")
    expect(highlight).to_have_text(bakery)
    first.locator("a.rag-cite-link", has_text="[1]").click()  # [1] of the first answer, not of the latest
    expect(highlight).to_have_text(harbor)
    expect(highlight).to_be_in_viewport(timeout=10_000)
    page.locator("#rag-chat .message.bot").nth(1).locator("a.rag-cite-link").click()
    expect(highlight).to_have_text(bakery)
    expect(highlight).to_be_in_viewport(timeout=10_000)


def test_citation_labels_name_the_article_by_its_title(site, browser):
    page = open_page(browser, site)
    ask(page, "harbor parade visitors", 1)
    labels = page.locator("#rag-cite label").all_inner_texts()
    assert labels[0] == "[1] Harbor parade — harbor.txt"
    assert all(label.endswith(" Harbor parade — harbor.txt") for label in labels)


def test_citations_are_one_radio_group_for_the_keyboard(site, browser):
    from playwright.sync_api import expect

    page = open_page(browser, site)
    ask(page, "lakeview plant page", 1)  # two citations: the plant page, then the formula
    radios = page.locator("#rag-cite input[type=radio]")
    expect(radios).to_have_count(2)
    highlight = page.locator("#rag-article #rag-highlight")
    expect(highlight).to_have_text(HAZARDS["url"][1])
    radios.nth(0).focus()
    page.keyboard.press("ArrowDown")  # moves to [2], which opens it
    expect(radios.nth(1)).to_be_focused()
    expect(highlight).to_have_text(HAZARDS["math"][1])
    page.keyboard.press("ArrowUp")
    expect(highlight).to_have_text(HAZARDS["url"][1])
    # Enter opens the focused citation: after another [n] link changed the article, Enter brings it back
    page.locator("#rag-chat a.rag-cite-link", has_text="[2]").click()
    expect(highlight).to_have_text(HAZARDS["math"][1])
    radios.nth(0).focus()
    page.keyboard.press("Enter")
    expect(highlight).to_have_text(HAZARDS["url"][1])


def test_a_refusal_shows_the_closest_passage_labelled_as_not_an_answer(site, browser):
    from playwright.sync_api import expect

    page = open_page(browser, site)
    bot = ask(page, "Who won the 2018 FIFA World Cup?", 1)
    expect(bot).to_contain_text("The articles don't say.")
    expect(page.locator("#rag-article .rag-closest")).to_have_text(
        "Closest passage, not an answer: the articles don't answer this question.")
    assert page.locator("#rag-article mark.rag-quote").count() == 0  # nothing is marked as a quote
    assert not page.locator("#rag-cite").is_visible()  # no citations to open


# ------------------------------------------------------------------------------------------ layout

@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["wide", "phone"])
def test_the_page_fits_its_width(site, browser, viewport):
    page = open_page(browser, site, viewport)
    bot = ask(page, "harbor parade visitors", 1)
    page.locator("#rag-library").get_by_text("Library").first.click()
    table = page.locator("#rag-library-table table")
    table.wait_for()
    box = page.locator("#rag-library-table").bounding_box()
    assert table.bounding_box()["width"] <= box["width"] + 1
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    if viewport is PHONE:  # the sources follow the answer closely
        gap = page.locator("#rag-sources").bounding_box()["y"] - (bot.bounding_box()["y"] + bot.bounding_box()["height"])
        assert gap < 250


# ------------------------------------------------------------------------------------------ library

def open_library(page):
    page.locator("#rag-library").get_by_text("Library").first.click()
    page.locator("#rag-library-table table").wait_for()


def library_titles(page) -> list[str]:
    return page.locator("#rag-library-table .rag-lib-title").all_inner_texts()


def choose(page, elem_id: str, label: str):
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=label).click()


def test_removal_is_confirmed_and_can_be_undone_from_the_page(site, browser):
    from playwright.sync_api import expect

    page = open_page(browser, site)
    open_library(page)
    assert library_titles(page) == ["Crumb and Co", "Harbor parade", "Zephyr turbine notes"]
    assert page.locator("#rag-doomed input").input_value() == ""  # nothing preselected
    page.locator("#rag-remove").click()  # with nothing chosen, nothing happens but a message
    expect(page.locator(".toast-body").first).to_contain_text("Choose a document to remove first.")
    choose(page, "rag-doomed", "Harbor parade — harbor.txt")
    page.locator("#rag-remove").click()
    expect(page.locator("#rag-confirm-text")).to_have_text(
        "Remove “Harbor parade — harbor.txt” from the library? You can restore it afterwards under Removed documents.")
    page.locator("#rag-remove-no").click()
    expect(page.locator("#rag-remove-yes")).to_be_hidden()
    assert library_titles(page) == ["Crumb and Co", "Harbor parade", "Zephyr turbine notes"]
    page.locator("#rag-remove").click()
    page.locator("#rag-remove-yes").click()
    expect(page.locator("#rag-library-status")).to_have_text(
        "Removed harbor.txt (its file is untouched). It can be restored under Removed documents.", timeout=30_000)
    assert library_titles(page) == ["Crumb and Co", "Zephyr turbine notes"]
    assert page.locator("#rag-doomed input").input_value() == ""
    assert (site["corpus"] / "harbor.txt").exists()
    choose(page, "rag-removed", f"Harbor parade — {(site['corpus'] / 'harbor.txt').resolve()}")
    page.locator("#rag-restore").click()
    expect(page.locator("#rag-library-status")).to_have_text("Restored harbor.txt.", timeout=30_000)
    assert library_titles(page) == ["Crumb and Co", "Harbor parade", "Zephyr turbine notes"]
    bot = ask(page, "harbor parade visitors", 1)
    expect(bot.locator(".rag-q").first).to_have_text("The harbor parade drew 5,000 visitors on Sunday.")


def test_upload_status_tells_the_truth_file_by_file(site, browser):
    from playwright.sync_api import expect

    tmp = site["tmp"]
    good = tmp / "up" / "ferry.txt"
    good.parent.mkdir()
    good.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n", encoding="utf-8")
    page_file = tmp / "up" / "sheet.xlsx"
    page_file.write_bytes(b"PK\x03\x04")
    tricky = tmp / "up" / "# Heading [link](x.y).md"
    tricky.write_bytes(b"")
    page = open_page(browser, site)
    open_library(page)
    page.locator("#rag-files input[type=file]").set_input_files([str(good), str(page_file), str(tricky)])
    page.locator("#rag-add").click()
    status = page.locator("#rag-library-status")
    expect(status).to_contain_text("Added ferry.txt.", timeout=60_000)
    assert status.locator("p").all_inner_texts() == [
        "Added ferry.txt.",
        "sheet.xlsx: only .txt, .md, .html and .pdf files can be added",
        "# Heading [link](x.y).md: the file is empty",
    ]
    assert status.locator("h1, h2, a").count() == 0  # the name is text, not Markdown
    assert "Ferry news" in library_titles(page)


def test_a_second_page_sees_uploads_and_removals(site, browser):
    from gradio_client import Client, handle_file
    from playwright.sync_api import expect

    other = browser.new_page(viewport=WIDE)  # opened before the change
    other.goto(site["url"])
    open_library(other)
    up = site["tmp"] / "ferry.txt"
    up.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n", encoding="utf-8")
    first, second = Client(site["url"], verbose=False), Client(site["url"], verbose=False)
    first.predict([handle_file(str(up))], api_name="/upload")
    fresh = open_page(browser, site)  # a page opened now lists it
    open_library(fresh)
    assert "Ferry news" in library_titles(fresh)
    # the page opened before sees it when its library is opened again, and when it asks
    other.locator("#rag-library").get_by_text("Library").first.click()  # closed
    open_library(other)
    expect(other.locator("#rag-library-table .rag-lib-title", has_text="Ferry news")).to_have_count(1)
    bot = ask(other, "harbor ferry visitors", 1)
    expect(bot.locator(".rag-q")).to_have_text("The harbor ferry carries 900 visitors a day.")
    # another session removes it, although its page was served before the upload
    *_, status = second.predict("ferry.txt", api_name="/remove")
    assert status == "<p>Removed ferry.txt. It can be restored under Removed documents.</p>"
    newer = open_page(browser, site)
    open_library(newer)
    assert "Ferry news" not in library_titles(newer)
    bot = ask(other, "harbor ferry visitors", 2)
    expect(bot).not_to_contain_text("The harbor ferry carries")


def test_an_internal_failure_says_what_failed(site, browser, monkeypatch):
    from gradio_client import Client, handle_file

    from ui import library

    def broken(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(library.Library, "add", broken)
    up = site["tmp"] / "ferry.txt"
    up.write_text("Ferry news\n\nThe harbor ferry carries 900 visitors a day.\n", encoding="utf-8")
    with pytest.raises(Exception) as e:
        Client(site["url"], verbose=False).predict([handle_file(str(up))], api_name="/upload")
    assert str(e.value) == ("Could not add the files: Something went wrong on the server (OSError: [Errno 28] No space "
                            "left on device); nothing was changed, try again.")


def test_page_messages_name_no_commands(site, browser):
    from playwright.sync_api import expect

    page = open_page(browser, site)
    page.locator("#rag-question textarea").fill("???")
    page.locator("#rag-ask").click()
    toast = page.locator(".toast-body").first
    expect(toast).to_contain_text("The question has no words in it: type a question in words.")
    assert "rag " not in toast.inner_text()


def test_screenshots_for_the_docs(site, browser):
    """With RAG_SCREENSHOTS=docs, writes docs/page-1400.png and docs/page-390.png (an answer, its
    sources and the library); otherwise it checks the page renders an answer at both widths."""
    out = os.environ.get("RAG_SCREENSHOTS")
    for viewport in (WIDE, PHONE):
        page = open_page(browser, site, viewport)
        ask(page, "lakeview plant page", 1)
        open_library(page)
        page.wait_for_timeout(1500)  # the library's refresh fades the table while it runs
        shot = site["tmp"] / f"page-{viewport['width']}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        if out:
            shutil.copy(shot, ROOT / out / shot.name)
        page.close()
