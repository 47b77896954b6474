"""Answer JSON (``Answer.to_dict()``, the `rag ask --json` schema) -> Markdown to take away: the quotes
with their [n], then the numbered sources with title, file, URL, page and character range.

The chat page's "Copy answer with sources" and "Download conversation" and `rag ask --format markdown`
all write through here, so they say the same. Rendered as Markdown, every quote reads as the article
has it (its line breaks joined, as Markdown joins them anyway): characters Markdown or HTML would
interpret are backslash-escaped.
"""
from __future__ import annotations

import json
import re
from typing import Iterable
from urllib.parse import urlsplit

from rag.types import POSSIBLE, REFUSE

REFUSAL = "The articles don't answer this."
PASSAGE_CHARS = 160  # of each closest passage listed under a refusal, as `rag ask` prints them

# Anywhere in a line: emphasis, code, links and images, raw HTML and autolinks, headings, tables,
# strikethrough, and the $…$ math that GitHub and many editors render. An underscore between two
# letters or digits ("file_name") can neither open nor close emphasis, so it is left as it is.
_INLINE = re.compile(r"([\\`*\[\]<>#|~$]|(?<![^\W_])_|_(?![^\W_]))")
# "&lt;" and "&#65;" would turn into the character they name.
_ENTITY = re.compile(r"&(?=#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[A-Za-z][A-Za-z0-9]*;)")
# Only at the start of a line (each escaped text may start one): list items, "1986." and "3)" as
# ordered list items, "+"/"-"/"=" as list items, thematic breaks or setext underlines.
_LEADING = re.compile(r"^(\d{1,9})([.)])|^([-+=])")


def escape(text: str) -> str:
    """``text`` on one line, escaped so that Markdown shows it character for character."""
    text = " ".join(str(text).split())
    text = _ENTITY.sub(r"\\&", _INLINE.sub(r"\\\1", text))
    return _LEADING.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", text)


def _url(url: str) -> str:
    """An http(s) URL as an autolink; anything else (a javascript: URL, one with spaces) as text."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme in ("http", "https") and not re.search(r"[\s<>]", url):
        return f"<{url}>"
    return escape(url)


def source_line(c: dict) -> str:
    """One numbered source: "1. Title — file, <url>, page 3, characters 10–75" (what is known of it)."""
    parts = [escape(c["source"])]
    if c.get("url"):
        parts.append(_url(c["url"]))
    if c.get("page") is not None:
        parts.append(f"page {c['page']}")
    parts.append(f"characters {c['start']}–{c['end']}")
    title = f"{escape(c['title'])} — " if c.get("title") else ""
    return f"{c['n']}. {title}{', '.join(parts)}"


def answer_markdown(answer: dict) -> str:
    """The answer as Markdown: a possible answer says so first, a confident one gives its confidence
    after the quotes; a refusal says the articles don't answer and lists the closest passages as not
    an answer. Ends without a newline."""
    outcome = answer.get("outcome") or (REFUSE if answer["abstained"] else "answer")
    if outcome == REFUSE:
        lines = [REFUSAL]
        passages = answer.get("passages") or []
        if passages:
            lines += ["", "Closest passages (not an answer):", ""]
            lines += [f"{p['rank']}. {escape(p['source'])}, characters {p['start']}–{p['end']}: "
                      f"{escape(_short(p['text']))}" for p in passages[:3]]
        return "\n".join(lines)
    quotes = " ".join(f"{escape(c['quote'])} [{c['n']}]" for c in answer["citations"])
    if outcome == POSSIBLE:
        lines = [f"Possible answer (confidence {answer['confidence']:.2f}): the articles may not say this exactly.",
                 "", quotes]
    else:
        lines = [quotes, "", f"Confidence {answer['confidence']:.2f}"]
    return "\n".join([*lines, "", "Sources:", "", *(source_line(c) for c in answer["citations"])])


def conversation_markdown(turns: Iterable[dict]) -> str:
    """Each answer of a conversation under its question as a heading, oldest first."""
    parts = [f"## {escape(t['question'])}\n\n{answer_markdown(t)}\n" for t in turns]
    return "\n".join(parts) if parts else "No questions were asked.\n"


def conversation_json(turns: Iterable[dict]) -> str:
    """A JSON array of the conversation's answers, oldest first, each as `rag ask --json` prints it."""
    return json.dumps(list(turns), ensure_ascii=False, indent=1) + "\n"


def _short(text: str, limit: int = PASSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
