"""The chat page's Evaluate tab: a question set in, the figures `rag eval` gives for it out.

Input: our question set (evals/questions.jsonl) or an uploaded one (our JSONL, SQuAD JSON). Output:
the metrics, the tables by type and by split, the three plots and the worst misses of
``evals.run.evaluate`` — the function `rag eval` runs, so the figures are the same — and the
predictions and report files to download. A JSONL set is asked of the library as it is; a set that
brings its own documents is indexed where `rag eval` indexes it (``evals.run.prepare``: a cache keyed
by the set's content), never into the library.
"""
from __future__ import annotations

import html
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from evals import formats, run as runner
from rag.types import Answer, Chunk, Citation, Hit
from ui import render
from ui.conversation import fresh_folder

OURS = Path(__file__).resolve().parents[1] / "evals" / "questions.jsonl"
PLOTS = ("types.png", "latency.png", "reliability.png")
KEEP_INDEXES = 4  # question sets' own indexes kept loaded, for opening their misses


@dataclass(frozen=True)
class Miss:
    """A wrongly handled question, as the tab lists and opens it."""

    id: str
    question: str
    expected: str
    gold: str | None  # the document that answers it (None: unanswerable)
    evidence: tuple[str, ...]  # what to mark in ``gold``: its evidence sentences, else its answers
    prediction: dict  # Answer.to_dict() plus "id"


@dataclass(frozen=True)
class Result:
    name: str  # the question set's file name
    summary: dict
    types: dict
    splits: dict
    misses: tuple[Miss, ...]
    index_dir: str | None  # the index the set was asked of; None: the library
    report: Path  # the folder `rag eval --report` would write, predictions.jsonl included
    k: int

    def downloads(self) -> list[str]:
        return [str(self.report / "predictions.jsonl"), str(self.report / "report.md"), str(self.report / "report.zip")]

    def plots(self) -> list[str]:
        return [str(self.report / p) for p in PLOTS]


class Evaluator:
    """Runs question sets for the page. ``holder`` gives the library's assistant; ``embedder`` is
    what `rag eval` would index a set's own documents with (None: the real indexing embedder)."""

    def __init__(self, holder, embedder=None, work_dir: Path | None = None):
        self.holder = holder
        self.embedder = embedder
        self.work_dir = work_dir  # where reports are written (None: the temp dir)
        self._assistants: OrderedDict[str, object] = OrderedDict()  # index dir -> assistant, newest last
        self._lock = threading.Lock()

    def run(self, path: str | Path, name: str | None = None, k: int = 5, step=None, preparing=None) -> Result:
        """Evaluate the set at ``path`` (shown as ``name``); ``step(done, total)`` is called per question,
        ``preparing()`` before a set's own documents are indexed.

        Raises:
            BadQuestionSet: not a question set (the message names ``name``, not the upload's path).
        """
        name = name or Path(path).name
        started = time.perf_counter()
        try:
            dataset = formats.load(path)
        except formats.BadQuestionSet as e:
            raise formats.BadQuestionSet(name, str(e).removeprefix(f"{path}: ").split("; expected")[0]) from None
        if not dataset.questions:
            raise formats.BadQuestionSet(name, "holds no questions")
        if dataset.documents is None:
            index_dir, built, assistant = None, None, self.holder.current()
            where = self.holder.index_dir
        else:
            if preparing:
                preparing()
            where, built = runner.prepare(dataset, None, embedder=self.embedder)
            index_dir, assistant = str(where), self._assistant(where)
        records, summary, meta = runner.evaluate(assistant, dataset, where, built, k=k, step=step, started=started)
        report = fresh_folder("rag-evaluations", self.work_dir)
        runner.write_predictions(records, report / "predictions.jsonl")
        runner.write_report(report, dataset, records, summary, meta)
        archive(report)
        misses = tuple(Miss(str(r["id"]), r["q"].question, runner.expected(r["q"]), r["q"].source,
                            r["q"].evidence or r["q"].answers, r["prediction"]) for r in runner.worst_misses(records))
        return Result(name, summary, runner.by_type(records), runner.by_split(records), misses, index_dir, report, k)

    def store(self, index_dir: str | None):
        """The store a run read: the library's as it is now, or a set's own index."""
        return self.holder.current().store if index_dir is None else self._assistant(Path(index_dir)).store

    def _assistant(self, index_dir: Path):
        from rag.pipeline import Assistant

        key = str(index_dir)
        with self._lock:
            if key in self._assistants:
                self._assistants.move_to_end(key)
                return self._assistants[key]
        assistant = Assistant.load(index_dir, embedder=self.holder.embedder, model=self.holder.model)
        with self._lock:
            self._assistants[key] = assistant
            while len(self._assistants) > KEEP_INDEXES:
                self._assistants.popitem(last=False)
        return assistant


def archive(report: Path) -> Path:
    """report.zip in ``report``, holding the files `rag eval --report` writes there and the predictions.
    The files are named, not globbed: a zip written into the folder it archives would read itself
    while it grows."""
    names = ["report.json", "report.md", *PLOTS, "predictions.jsonl"]
    out = report / "report.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in names:
            if (report / name).is_file():
                z.write(report / name, name)
    return out


# ----------------------------------------------------------------------------------------- rendering

def summary_html(result: Result) -> str:
    """The metrics `rag eval` prints, as `rag eval` formats them."""
    s = result.summary
    where = "the library" if result.index_dir is None else "the set's own documents"
    head = (f"{s['questions']} questions of {result.name} ({s['answerable']} answerable, {s['unanswerable']} "
            f"unanswerable, {s['errors']} errors), asked of {where} with k={result.k}.")
    rows = "".join(f'<tr><th scope="row">{_esc(k)}</th><td class="rag-num">{_esc(runner.fmt(s[k]))}</td></tr>'
                   for k in runner.TABLE_KEYS if k in s)
    return (f'<p class="rag-eval-head">{_esc(head)}</p><table class="rag-eval-table" id="rag-eval-summary">'
            f'<thead><tr><th>metric</th><th class="rag-num">value</th></tr></thead><tbody>{rows}</tbody></table>')


def groups_html(result: Result) -> str:
    """The by-type and by-split tables of report.md, in its layout."""
    types = result.types
    head = "".join(f'<th class="rag-num">{_esc(k)}</th>' for k in runner.GROUP_KEYS)
    body = "".join(f'<tr><th scope="row">{_esc(t)}</th>'
                   + "".join(f'<td class="rag-num">{_esc(runner.fmt(v.get(k)))}</td>' for k in runner.GROUP_KEYS) + "</tr>"
                   for t, v in types.items())
    out = (f'<h3>By type</h3><div class="rag-eval-scroll"><table class="rag-eval-table" id="rag-eval-types">'
           f"<thead><tr><th>type</th>{head}</tr></thead><tbody>{body}</tbody></table></div>")
    if result.splits:
        names = list(result.splits)
        head = "".join(f'<th class="rag-num">{_esc(n)}</th>' for n in names)
        body = "".join(f'<tr><th scope="row">{_esc(k)}</th>'
                       + "".join(f'<td class="rag-num">{_esc(runner.fmt(result.splits[n].get(k)))}</td>' for n in names)
                       + "</tr>" for k in runner.GROUP_KEYS)
        out += (f'<h3>By split</h3><div class="rag-eval-scroll"><table class="rag-eval-table" id="rag-eval-splits">'
                f"<thead><tr><th>metric</th>{head}</tr></thead><tbody>{body}</tbody></table></div>")
    return out + f'<p class="rag-meta">{_esc(runner.LEGEND)}</p>'


def misses_html(result: Result) -> str:
    """The worst misses, confidently wrong first; each question is a link that opens it."""
    if not result.misses:
        return '<p class="rag-eval-none">No misses: every question was handled right.</p>'
    rows = "".join(
        f'<tr><td class="rag-nowrap">{_esc(m.id)}</td><td><a class="rag-miss-link" href="#miss-{i}">{_esc(m.question)}</a></td>'
        f"<td>{_esc(m.expected)}</td><td>{_esc(_got(m))}</td>"
        f'<td class="rag-nowrap">{_esc(m.prediction["outcome"])}</td>'
        f'<td class="rag-num">{m.prediction["confidence"]:.2f}</td></tr>' for i, m in enumerate(result.misses))
    return ('<table class="rag-eval-table" id="rag-eval-misses"><thead><tr><th>id</th><th>question</th><th>expected</th>'
            f'<th>got</th><th>outcome</th><th class="rag-num">confidence</th></tr></thead><tbody>{rows}</tbody></table>')


def _got(m: Miss) -> str:
    answer = m.prediction["answer"]
    return "(refused)" if m.prediction["abstained"] else (answer if len(answer) <= 160 else answer[:159] + "…")


def answer_of(prediction: dict) -> Answer:
    """The Answer a prediction (``Answer.to_dict()``) was made from, as far as the page shows it."""
    cites = tuple(Citation(c["n"], c["source"], c["title"], c["date"], c["start"], c["end"], c["quote"], c["encoding"],
                           c.get("page"), c.get("url")) for c in prediction["citations"])
    hits = tuple(Hit(Chunk(f"{p['source']}:{p['start']}", p["source"], p["text"], p["start"], p["end"], encoding=p["encoding"]),
                     p["score"], p["rank"]) for p in prediction["passages"])
    return Answer(prediction["question"], prediction["answer"], prediction["abstained"], cites, hits,
                  confidence=prediction["confidence"], outcome=prediction["outcome"])


def miss_html(m: Miss, i: int, store) -> str:
    """A miss opened: its question, what was expected, and the answer given with its [n] links."""
    gold = (f' <a class="rag-miss-gold" href="#miss-{i}-gold">Open the expected source ({_esc(m.gold)})</a>'
            if m.gold else "")
    return (f'<div class="rag-miss"><div class="rag-label">Question {_esc(m.id)}</div><p>{_esc(m.question)}</p>'
            f'<p class="rag-meta">Expected: {_esc(m.expected)}.{gold}</p>'
            + render.chat_html(answer_of(m.prediction), store, anchor=f"miss-{i}") + "</div>")


def miss_article_html(m: Miss, store, open_: str = "answer") -> str:
    """The article view for a miss: its answer's source (``open_`` "answer", or "cite:<n>" for
    citation n; a refusal shows the closest passage) or the expected source ("gold") with its evidence
    marked where the text holds it."""
    answer = answer_of(m.prediction)
    if open_ == "gold":
        if not m.gold:
            return render.article_html(store, None)
        doc = store.document(m.gold)
        at = next(((i, i + len(e)) for e in m.evidence if doc and e and (i := doc.text.find(e)) >= 0), (None, None))
        return render.article_html(store, m.gold, *at, mark_class="rag-passage")
    n = int(open_.partition(":")[2] or 1) if open_.startswith("cite") else 1
    c = next((c for c in answer.citations if c.n == n), None)
    if c is None:
        return render.answer_article_html(store, answer)
    return render.citation_html(store, c.doc_id, c.start, c.end, c.quote)


def _esc(s) -> str:
    return html.escape(str(s), quote=True)


# ----------------------------------------------------------------------------------------- the tab

# A click on a miss's question, on an [n] of its answer, or on its expected source types
# "<miss>:<what>:<nonce>" into the hidden #rag-eval-open box, as the chat's [n] links do (PAGE_JS).
PAGE_JS = r"""
() => {
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest && ev.target.closest('a.rag-miss-link, a.rag-miss-gold, a.rag-cite-link');
    if (!a) return;
    const m = /^#miss-(\d+)(?:-(gold)|-cite-(\d+))?$/.exec(a.getAttribute('href') || '');
    if (!m) return;
    ev.preventDefault();
    const box = document.querySelector('#rag-eval-open textarea, #rag-eval-open input');
    if (!box) return;
    box.value = `${m[1]}:${m[2] || (m[3] ? 'cite-' + m[3] : 'answer')}:${Date.now()}`;
    box.dispatchEvent(new Event('input', {bubbles: true}));
  });
}
"""

CSS = """
.rag-eval-table { border-collapse: collapse; font-size: 0.85em; margin-bottom: 8px; }
.rag-eval-table th, .rag-eval-table td { border-bottom: 1px solid #e5e7eb; padding: 3px 8px; text-align: left;
                                         vertical-align: top; overflow-wrap: anywhere; }
.rag-eval-table th, .rag-eval-table .rag-num, .rag-eval-table .rag-nowrap { white-space: nowrap; overflow-wrap: normal; }
.rag-eval-table .rag-num { text-align: right; }
.rag-eval-scroll { overflow-x: auto; max-width: 100%; }
#rag-eval-misses { width: 100%; }
a.rag-miss-link, a.rag-miss-gold { color: #1d4ed8; }
"""


def tab(holder, embedder=None, question_set: Path | None = OURS) -> None:
    """The Evaluate tab's components and events, inside the caller's ``gr.Tab``. ``question_set`` is the
    set offered without an upload (None or missing: uploads only)."""
    import gradio as gr

    evaluator = Evaluator(holder, embedder)
    ours = question_set if question_set and Path(question_set).is_file() else None
    choices = ([(f"Ours: {ours.parent.name}/{ours.name}, on the library", "ours")] if ours else []) + \
        [("An uploaded question set", "upload")]

    gr.Markdown("Score a question set through the same pipeline as the chat: the figures of `rag eval`.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=280):
            which = gr.Radio(choices, value=choices[0][1], label="Question set", elem_id="rag-eval-set")
            upload = gr.File(type="filepath", file_types=[".jsonl", ".json"], elem_id="rag-eval-file", height=110,
                             label="Upload our .jsonl (asked of the library) or a SQuAD .json (indexed on its own)")
        with gr.Column(scale=1, min_width=200):
            k = gr.Slider(1, 20, value=5, step=1, label="Passages per question (k)", elem_id="rag-eval-k")
            go = gr.Button("Run the evaluation", variant="primary", elem_id="rag-eval-run")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=260):
            summary = gr.HTML(elem_id="rag-eval-summary-box")
        with gr.Column(scale=3, min_width=300):
            groups = gr.HTML(elem_id="rag-eval-groups")
    with gr.Row():
        plots = [gr.Image(type="filepath", label=label, interactive=False, show_label=True, elem_id=f"rag-eval-plot-{i}",
                          visible=False)
                 for i, label in enumerate(("Accuracy by type", "Latency", "Reliability"))]
    gr.Markdown("### Worst misses\nConfidently wrong first. Click a question to open its answer and source.")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            misses = gr.HTML(elem_id="rag-eval-misses-box")
        with gr.Column(scale=2, min_width=300):
            miss = gr.HTML(elem_id="rag-eval-miss")
            article = gr.HTML(elem_id="rag-eval-article")
    files = gr.File(label="Predictions (JSONL) and report", file_count="multiple", interactive=False,
                    elem_id="rag-eval-files", visible=False)
    state = gr.State(None)  # the last Result of this page
    link = gr.Textbox(elem_id="rag-eval-open", elem_classes=["rag-hidden"], show_label=False, container=False)

    def start(choice, path, k, progress=gr.Progress()):
        from ui.app import for_page

        if choice == "upload" or not ours:
            if not path:
                raise gr.Error("Choose a question set file first: our .jsonl or a SQuAD .json.")
            target, name = Path(path), Path(path).name
        else:
            target, name = ours, f"{ours.parent.name}/{ours.name}"
        progress(0, desc="Loading the question set…")
        try:
            result = evaluator.run(target, name, int(k),
                                   step=lambda done, total: progress((done, total), desc="Asking the questions",
                                                                     unit="questions"),
                                   preparing=lambda: progress(0, desc="Indexing the set's own documents (once)…"))
        except Exception as e:
            raise gr.Error(for_page(e)) from None
        return (summary_html(result), groups_html(result),
                *[gr.update(value=p, visible=True) for p in result.plots()], misses_html(result), "", "",
                gr.update(value=result.downloads(), visible=True), result)

    def open_miss(value: str, result: Result | None):
        """"<miss>:<answer|cite-n|gold>:<nonce>" from the page's script -> (miss panel, article view)."""
        i, _, rest = (value or "").partition(":")
        what = rest.partition(":")[0]
        if result is None or not i.isdigit() or int(i) >= len(result.misses):
            return gr.update(), gr.update()
        m = result.misses[int(i)]
        store = evaluator.store(result.index_dir)
        return miss_html(m, int(i), store), miss_article_html(m, store, what.replace("-", ":"))

    upload.upload(lambda: "upload", None, which, api_visibility="private")
    # Its own queue, one run at a time: chat questions keep being answered while a set runs.
    go.click(start, [which, upload, k], [summary, groups, *plots, misses, miss, article, files, state],
             api_visibility="private", concurrency_id="evaluate", concurrency_limit=1)
    scroll = ("() => { setTimeout(() => { const m = document.querySelector('#rag-eval-article #rag-highlight');"
              " if (m) m.scrollIntoView({block: 'center'}); }, 50); }")
    link.change(open_miss, [link, state], [miss, article], api_visibility="private").then(None, js=scroll)
