"""The take-away Markdown (rag/takeaway.py): exact text, and quotes that read as the article has them."""
import html
import json
import re

import pytest
from hypothesis import given, strategies as st

from rag.takeaway import answer_markdown, conversation_json, conversation_markdown, escape

PDF_QUOTE = "The plant cost 120 million dollars."
WEB_QUOTE = "Output grew 17.1 percent last year."


def cite(n, quote, source, start, title=None, page=None, url=None, encoding="utf-8"):
    return {"n": n, "source": source, "title": title, "date": None, "start": start, "end": start + len(quote),
            "quote": quote, "encoding": encoding, "page": page, "url": url}


def answer(outcome="answer", confidence=0.874, citations=(), passages=(), question="How much did the plant cost?"):
    return {"question": question, "answer": " ".join(f"{c['quote']} [{c['n']}]" for c in citations),
            "abstained": outcome == "refuse", "outcome": outcome, "confidence": confidence,
            "citations": list(citations), "passages": list(passages),
            "timings_ms": {"embed": 1.0, "retrieve": 1.0, "answer": 1.0, "total": 3.0}}


TWO = (cite(1, PDF_QUOTE, "reports/plant.pdf", 1200, title="Plant report 2024", page=3, encoding="pdf-text"),
       cite(2, WEB_QUOTE, "news/output.html", 57, title="Output news", url="https://example.com/news?id=7&x=1",
            encoding="html-text"))


def test_a_confident_answer_gives_quotes_then_numbered_sources_with_page_url_and_range():
    assert answer_markdown(answer(citations=TWO)) == (
        "The plant cost 120 million dollars. [1] Output grew 17.1 percent last year. [2]\n"
        "\n"
        "Confidence 0.87\n"
        "\n"
        "Sources:\n"
        "\n"
        "1. Plant report 2024 — reports/plant.pdf, page 3, characters 1200–1235\n"
        "2. Output news — news/output.html, <https://example.com/news?id=7&x=1>, characters 57–92")


def test_a_possible_answer_says_so_before_its_quotes_and_an_untitled_source_is_named_by_its_file():
    one = cite(1, PDF_QUOTE, "notes.txt", 0)
    assert answer_markdown(answer("possible", 0.415, [one])) == (
        "Possible answer (confidence 0.41): the articles may not say this exactly.\n"
        "\n"
        "The plant cost 120 million dollars. [1]\n"
        "\n"
        "Sources:\n"
        "\n"
        "1. notes.txt, characters 0–35")


def test_a_refusal_says_so_and_lists_the_closest_passages_as_not_an_answer():
    long = "Crumb and Co bakes sourdough. " * 10
    passages = [{"rank": 1, "source": "alpha.txt", "start": 10, "end": 60, "score": 0.5, "encoding": "utf-8",
                 "text": "Zephyr Dynamics is\nbased in *Lakeview*."},
                {"rank": 2, "source": "beta.md", "start": 0, "end": len(long), "score": 0.4, "encoding": "utf-8",
                 "text": long}]
    # a passage is shortened to 160 characters as `rag ask` prints it: 159 of the text and "…"
    assert answer_markdown(answer("refuse", 0.05, passages=passages)) == (
        "The articles don't answer this.\n"
        "\n"
        "Closest passages (not an answer):\n"
        "\n"
        "1. alpha.txt, characters 10–60: Zephyr Dynamics is based in \\*Lakeview\\*.\n"
        f"2. beta.md, characters 0–300: {' '.join(long.split())[:159]}…")
    assert answer_markdown(answer("refuse", 0.05)) == "The articles don't answer this."


def test_characters_markdown_would_interpret_are_escaped():
    quote = "1986. The **glacier** [report](http://x.y) said &lt;img&gt; costs $$5 & rose_2 ~~fast~~ | \\ `#1`"
    c = cite(1, quote, "# notes [v2].md", 0, title="-Glacier_report- <draft>")
    assert answer_markdown(answer(citations=[c])).splitlines()[0] == (
        "1986\\. The \\*\\*glacier\\*\\* \\[report\\](http://x.y) said \\&lt;img\\&gt; costs \\$\\$5 & rose_2 "
        "\\~\\~fast\\~\\~ \\| \\\\ \\`\\#1\\` [1]")
    assert source_line_of(answer_markdown(answer(citations=[c]))) == (
        f"1. \\-Glacier_report- \\<draft\\> — \\# notes \\[v2\\].md, characters 0–{len(quote)}")


def source_line_of(markdown: str) -> str:
    return markdown.splitlines()[-1]


def test_only_web_addresses_become_links():
    c = cite(1, WEB_QUOTE, "page.html", 0, url="javascript:alert(1)")
    assert source_line_of(answer_markdown(answer(citations=[c]))) == "1. page.html, javascript:alert(1), characters 0–35"


def plain_text(markdown: str) -> str:
    """What a CommonMark renderer (with GitHub's strikethrough and tables) shows of ``markdown``."""
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").enable(["strikethrough", "table"]).render(markdown)
    assert re.sub(r"</?p>", "", rendered).count("<") == 0, rendered  # nothing but a paragraph: no markup
    return html.unescape(re.sub(r"</?p>", "", rendered)).strip()


@pytest.mark.parametrize("text", [
    "1986. The year it opened.", "- a dash", "+ plus", "=== heading?", "# not a heading", "> not a quote",
    "3) three", "    four spaces", "a\n===", "&amp; &#65; &#x41; AT&T", "<b>bold</b> <http://x.y>", "![img](x.png)",
    "***", "___", "`code`", "_a_ b_c_d __e__ f__g h_", "snake_case_name", "x_*y*_z", "[^1]", "[a]: http://x.y", "$$E = mc^2$$", "x\\", "~~gone~~", "a | b\n--- | ---",
])
def test_an_escaped_text_renders_as_itself(text):
    assert plain_text(escape(text)) == " ".join(text.split())


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\x00")
               | st.sampled_from(list("\\`*_[]<>#|~$&;!()-+=.:1 \n")), max_size=40))
def test_any_escaped_text_renders_as_itself(text):
    assert plain_text(escape(text)) == " ".join(text.split())


def test_a_conversation_as_markdown_and_as_json():
    first = answer(citations=TWO[:1], question="What did the *plant* cost?")
    second = answer("refuse", 0.1, question="Who won the cup?")
    assert conversation_markdown([first, second]) == (
        "## What did the \\*plant\\* cost?\n\n" + answer_markdown(first) + "\n\n"
        "## Who won the cup?\n\nThe articles don't answer this.\n")
    assert json.loads(conversation_json([first, second])) == [first, second]
    assert conversation_markdown([]) == "No questions were asked.\n"
