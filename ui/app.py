"""The Gradio chat page: ask, read a quoted answer, check every source in one click.

Calls rag.pipeline only. The named API endpoint ``ask`` returns ``Answer.to_dict()``.
"""
from __future__ import annotations

import ipaddress
import os
import threading
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from rag.errors import DocumentNotFound, RagError  # noqa: E402
from ui import conversation, evaluate, library, render  # noqa: E402

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """"user:password" -> (user, password).

    Raises:
        RagError: the value is not of that form.
    """
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise RagError("--auth must look like user:password")
    return user, password


class Holder:
    """The live Assistant, swapped whole after the library changes; readers never see half an index."""

    def __init__(self, index_dir: Path, embedder=None, model=None, store: str | None = None):
        from rag.pipeline import Assistant

        self.index_dir = index_dir
        self.store = store  # None: the local index at index_dir; else a Milvus store spec
        self._lock = threading.Lock()
        self.model = model  # None: the shipped answer model
        self.assistant = Assistant.load(index_dir, embedder=embedder, model=model, store=store)
        self.embedder = self.assistant.embedder  # reloads reuse the loaded model

    def reload(self) -> None:
        from rag.pipeline import Assistant

        fresh = Assistant.load(self.index_dir, embedder=self.embedder, model=self.model, store=self.store)
        with self._lock:
            self.assistant = fresh

    def current(self):
        """The assistant over the index as it is now: reloaded first if another page or process
        changed the library since (a CURRENT pointer read, cheap enough for every request)."""
        if self.assistant.outdated():
            try:
                self.reload()
            except RagError:  # mid-change elsewhere: answer from what is loaded
                pass
        return self.assistant


def example_questions(store, n: int = 4) -> list[str]:
    """Starter prompts drawn from the indexed articles: their short titles, as keyword queries."""
    out = []
    for d in store.catalog():
        if d.title and 3 <= len(d.title.split()) <= 12:
            out.append(d.title.split(" – ")[-1].split(" - ")[0].strip())
        if len(out) >= n:
            break
    return out


def for_page(error: BaseException) -> str:
    """An error in the words of someone using the page (the CLI's messages name commands)."""
    from rag.errors import EmptyQuestion

    if isinstance(error, EmptyQuestion):
        return "The question has no words in it: type a question in words."
    if isinstance(error, DocumentNotFound):
        return "That document is no longer in the library; the list now shows what it holds."
    if isinstance(error, RagError):
        return str(error)
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return f"Something went wrong on the server ({text}); nothing was changed, try again."


# The page's script. [n] in an answer opens that citation in the article view, scrolled to the
# sentence: in the latest answer through the citation radio buttons (which also show its source
# card), in an earlier one through the hidden #rag-open box. Gradio gives each radio button its own
# name, so the script makes them one group for the keyboard: arrow keys move and open, Enter opens.
PAGE_JS = r"""
() => {
  const radios = () => [...document.querySelectorAll('#rag-cite input[type=radio]')];
  const latestTurn = () => Math.max(-1, ...[...document.querySelectorAll('#rag-chat a.rag-cite-link')]
    .map((a) => +((/^#turn-(\d+)-/.exec(a.getAttribute('href') || '') || [0, -1])[1])));
  const viaBox = (turn, n) => {
    const box = document.querySelector('#rag-open textarea, #rag-open input');
    if (!box) return;
    box.value = `${turn}:${n}:${Date.now()}`;  // always a new value: opening the same one again works
    box.dispatchEvent(new Event('input', {bubbles: true}));
  };
  const open = (turn, n) => {
    if (turn !== latestTurn()) return viaBox(turn, n);
    const card = document.getElementById(`cite-${n}`);
    if (card) card.scrollIntoView({block: 'nearest'});
    const r = radios().find((x) => x.value === String(n));
    if (r && !r.checked) r.click(); else viaBox(turn, n);  // a checked radio does not fire again
    if (r) r.focus({preventScroll: true});
  };
  document.addEventListener('mousedown', (ev) => {
    // Clicking the citation already chosen fires no event of its own: open it again, so the
    // article comes back into view (the page may have scrolled since). Before the click, whose
    // label activation would check a radio not chosen yet, and that one opens by its own event.
    const label = ev.target.closest && ev.target.closest('#rag-cite label');
    const chosen = label && label.querySelector('input[type=radio]');
    if (chosen && chosen.checked) viaBox(latestTurn(), +chosen.value);
  });
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest && ev.target.closest('a.rag-cite-link');
    if (!a) return;
    ev.preventDefault();
    const m = /^#turn-(\d+)-cite-(\d+)$/.exec(a.getAttribute('href') || '');
    if (m) open(+m[1], +m[2]);
  });
  document.addEventListener('keydown', (ev) => {
    const r = ev.target;
    if (!r.closest || !r.closest('#rag-cite') || r.type !== 'radio') return;
    const all = radios(), i = all.indexOf(r);
    const step = {ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1}[ev.key];
    if (step) {
      ev.preventDefault();
      const next = all[(i + step + all.length) % all.length];
      next.focus();
      open(latestTurn(), +next.value);
    } else if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      open(latestTurn(), +r.value);
    }
  });
}
"""


def open_backend(index_dir: str | Path, embedder=None, library_dir: str | Path | None = None, model=None,
                 store: str | None = None) -> tuple[Holder, library.Library]:
    """The live assistant and the library over the index at ``index_dir`` (or the Milvus store ``store``
    names), which the page and the HTTP API share: one lock then serialises their changes."""
    holder = Holder(Path(index_dir), embedder, model, store)
    documents = holder.embedder  # uploads are embedded in batches, where the chosen embedder's threads pay off
    if embedder is None:
        _questions_on_one_thread(holder)
    lib = library.Library(Path(index_dir), Path(library_dir) if library_dir else Path(index_dir).parent / "library",
                          documents, store)
    return holder, lib


def _questions_on_one_thread(holder: Holder) -> None:
    """Give ``holder`` the query encoder a server wants (rag.pipeline.serving_embedder): one thread per
    question, so several questions are answered at once."""
    from rag.pipeline import serving_embedder

    chosen = holder.embedder
    holder.embedder = serving_embedder(chosen)
    if holder.embedder is not chosen:
        holder.reload()


def build_app(index_dir: str | Path, embedder=None, library_dir: str | Path | None = None, model=None,
              store: str | None = None, backend: tuple[Holder, library.Library] | None = None,
              question_set: Path | None = evaluate.OURS):
    """The page over the index at ``index_dir`` (or the Milvus store ``store`` names); ``embedder`` and
    ``model`` (the answer model) default to the real ones. ``backend`` (from open_backend) replaces all
    of these when given. ``question_set`` is the one the Evaluate tab offers without an upload."""
    import gradio as gr

    from rag.takeaway import answer_markdown

    holder, lib = backend or open_backend(index_dir, embedder, library_dir, model, store)

    def doc_choices(store) -> list[tuple[str, str]]:
        return [(render.doc_label(d.doc_id, d.title), d.doc_id) for d in store.catalog()]

    def refreshed(status: str | None = None):
        """The library panel as the index holds it now: table, removal and restore choices (none
        preselected), the confirmation hidden, and ``status`` if given."""
        idx = holder.current().store
        removed = [(r.label, r.key) for r in lib.removed()]
        out = (render.library_html(library.rows(idx)), gr.update(choices=doc_choices(idx), value=None),
               gr.update(choices=removed, value=None), gr.update(visible=False), gr.update(value=""))
        return out if status is None else (*out, render.text_html(status))

    def guarded(action: str, work):
        """Run ``work``; any failure becomes one line saying what failed, never a bare "Error"."""
        try:
            return work()
        except gr.Error:
            raise
        except Exception as e:
            message = for_page(e)
            raise gr.Error(message if isinstance(e, RagError) else f"Could not {action}: {message}") from None

    def upload(files, progress=gr.Progress()):
        files = files or []
        if not files:
            raise gr.Error("Choose one or more .txt, .md, .html or .pdf files first.")
        progress(0.1, desc="Checking and indexing…")
        pairs = [(Path(f), Path(f).name) for f in (files if isinstance(files, list) else [files])]

        def work():
            added, problems = lib.add(pairs, store=holder.current().store, after=holder.reload)
            lines = [f"Added {', '.join(added)}." if added else "Nothing was added."] + problems
            return refreshed("\n".join(lines))

        out = guarded("add the files", work)
        progress(1.0)
        return out

    def ask_removal(doc_id):
        if not doc_id:
            raise gr.Error("Choose a document to remove first.")
        doc = holder.current().store.document(doc_id)
        if doc is None:
            raise gr.Error(for_page(DocumentNotFound(doc_id)))
        question = (f"Remove “{render.doc_label(doc.doc_id, doc.title)}” from the library? "
                    "You can restore it afterwards under Removed documents.")
        return gr.update(visible=True), render.text_html(question)

    def remove(doc_id):
        if not doc_id:
            raise gr.Error("Choose a document to remove first.")
        return guarded(f"remove {doc_id}", lambda: refreshed(lib.remove(holder.current().store, doc_id, after=holder.reload)))

    def restore(key):
        if not key:
            raise gr.Error("Choose a removed document to restore first.")
        return guarded("restore the document", lambda: refreshed(lib.restore(key, after=holder.reload)))

    def respond(message: str, history: list[dict], k: float, turns: list, answers: list):
        message = (message or "").strip()
        if not message:
            raise gr.Error("Type a question first.")
        asked = [m["content"] for m in history if m.get("role") == "user" and isinstance(m.get("content"), str)]
        assistant = holder.current()
        answer = guarded("answer", lambda: assistant.ask(message, history=asked, k=int(k)))
        turns = list(turns or [])
        history = history + [{"role": "user", "content": message},
                             {"role": "assistant", "content": render.chat_html(answer, assistant.store, len(turns))}]
        choices = render.citation_choices(answer)
        # The quote too: the library may change before a citation is clicked (see render.citation_html).
        state = turns + [[(c.doc_id, c.start, c.end, c.quote) for c in answer.citations]]
        answers = [*(answers or []), answer.to_dict()]  # the take-away: each turn as `rag ask --json` prints it
        as_json, as_md = conversation.files(answers)
        return (history, "", render.sources_html(answer, assistant.store), render.details_html(answer),
                gr.update(choices=choices, value=choices[0][1] if choices else None, visible=bool(choices)),
                render.answer_article_html(assistant.store, answer), state,
                answers, answer_markdown(answers[-1]), gr.update(interactive=True),
                gr.update(value=as_json, interactive=True), gr.update(value=as_md, interactive=True))

    def open_citation(choice: str | None, turns: list, turn: int = -1):
        """The article of citation ``choice`` of answer ``turn`` (default: the latest)."""
        try:
            cited = turns[turn]
            n = int(choice) - 1
        except (IndexError, TypeError, ValueError):
            return gr.update()
        if not 0 <= n < len(cited):
            return render.article_html(holder.current().store, None)
        return render.citation_html(holder.current().store, *cited[n])

    def open_link(value: str, turns: list):
        """A click on [n] of an earlier answer: "turn:n:nonce" from the page's script."""
        turn, _, rest = (value or "").partition(":")
        if not turn.isdigit():
            return gr.update()
        return open_citation(rest.partition(":")[0], turns, int(turn))

    def api_ask(question: str) -> dict:
        return guarded("answer", lambda: holder.current().ask(question).to_dict())

    # After an answer, scroll only inside the article box (the page stays on the chat, which matters
    # on a phone); after a citation click, bring the highlighted sentence itself into view.
    in_box_js = ("() => { setTimeout(() => { const m = document.getElementById('rag-highlight'); if (!m) return; "
                 "const box = m.closest('.rag-article'); if (box) box.scrollTop = m.offsetTop - box.offsetTop - box.clientHeight / 3; }, 50); }")
    scroll_js = "() => { setTimeout(() => { const m = document.getElementById('rag-highlight'); if (m) m.scrollIntoView({block: 'center'}); }, 50); }"

    with gr.Blocks(title="Ask the articles") as demo:
        gr.Markdown("## Ask the articles\nEvery answer quotes the articles word for word; each **[n]** opens the exact sentence.")
        with gr.Tabs(elem_id="rag-tabs"):
            with gr.Tab("Chat", id="chat", elem_id="rag-tab-chat"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=300):
                        box = gr.Textbox(show_label=False, placeholder="Ask a question…", scale=5, elem_id="rag-question", lines=1,
                                         render=False)
                        # Above the chat: on a phone the sources then come right after the question box.
                        gr.Examples(example_questions(holder.assistant.store), inputs=box, label="Examples")
                        # HTML, not Markdown: a quote is shown as the article has it ($$, &lt;, URLs included).
                        chat = gr.Chatbot(label="Chat", height=460, elem_id="rag-chat", render_markdown=False,
                                          latex_delimiters=[], sanitize_html=True,
                                          placeholder="Ask about the indexed articles, or pick an example above.")
                        with gr.Row(elem_id="rag-ask-row"):
                            box.render()
                            send = gr.Button("Ask", variant="primary", scale=1, min_width=70, elem_id="rag-ask")
                    with gr.Column(scale=2, min_width=300):
                        sources = gr.HTML(label="Sources", elem_id="rag-sources")
                        # Under the sources, not the chat: on a phone the sources still follow the answer.
                        with gr.Row(elem_id="rag-takeaway-row"):
                            copy = gr.Button("Copy answer with sources", size="sm", interactive=False, elem_id="rag-copy")
                            save_json = gr.DownloadButton("Download conversation (JSON)", size="sm", interactive=False,
                                                          elem_id="rag-download-json")
                            save_md = gr.DownloadButton("Download conversation (Markdown)", size="sm", interactive=False,
                                                        elem_id="rag-download-md")
                        gr.HTML('<span id="rag-copy-status" role="status"></span>', padding=False)
                        cite = gr.Radio(choices=[], label="Open the article of citation", elem_id="rag-cite", visible=False)
                        article = gr.HTML(elem_id="rag-article")
                        with gr.Accordion("Retrieval details", open=False):
                            k = gr.Slider(1, 20, value=5, step=1, label="Passages to retrieve (k)")
                            details = gr.HTML(elem_id="rag-details")
                with gr.Accordion("Library", open=False, elem_id="rag-library") as shelf:
                    docs = gr.HTML(render.library_html(library.rows(holder.assistant.store)), elem_id="rag-library-table")
                    # No file_types filter: the browser would refuse a whole batch for one wrong file; each
                    # file is checked on its own, and the status says which were refused and why.
                    files = gr.File(file_count="multiple", type="filepath", elem_id="rag-files",
                                    label="Add .txt, .md, .html or .pdf articles (10 MB each at most)")
                    add_btn = gr.Button("Add to library", elem_id="rag-add")
                    with gr.Row(equal_height=False):
                        with gr.Column(min_width=260):
                            doomed = gr.Dropdown(choices=doc_choices(holder.assistant.store), value=None, allow_custom_value=True,
                                                 label="Document to remove", elem_id="rag-doomed")
                            ask_remove_btn = gr.Button("Remove…", variant="stop", elem_id="rag-remove")
                            with gr.Group(visible=False, elem_id="rag-confirm") as confirm:
                                confirm_text = gr.HTML(elem_id="rag-confirm-text")
                                with gr.Row():
                                    yes_btn = gr.Button("Yes, remove it", variant="stop", elem_id="rag-remove-yes")
                                    no_btn = gr.Button("Cancel", elem_id="rag-remove-no")
                        with gr.Column(min_width=260):
                            gone = gr.Dropdown(choices=[(r.label, r.key) for r in lib.removed()], value=None,
                                               allow_custom_value=True, label="Removed documents", elem_id="rag-removed")
                            restore_btn = gr.Button("Restore", elem_id="rag-restore")
                    status = gr.HTML(elem_id="rag-library-status")
            with gr.Tab("Evaluate", id="evaluate", elem_id="rag-tab-evaluate"):
                evaluate.tab(holder, embedder, question_set)
        panel = [docs, doomed, gone, confirm, confirm_text]
        add_btn.click(upload, files, [*panel, status], api_name="upload", concurrency_id="library", concurrency_limit=1)
        ask_remove_btn.click(ask_removal, doomed, [confirm, confirm_text], api_visibility="private")
        no_btn.click(lambda: (gr.update(visible=False), ""), None, [confirm, confirm_text], api_visibility="private")
        yes_btn.click(remove, doomed, [*panel, status], api_name="remove", concurrency_id="library", concurrency_limit=1)
        restore_btn.click(restore, gone, [*panel, status], api_name="restore", concurrency_id="library",
                          concurrency_limit=1)
        # Each page shows the library as it is when it is opened, not as it was at server start.
        demo.load(refreshed, None, panel, api_visibility="private")
        shelf.expand(refreshed, None, panel, api_visibility="private")  # a page open for a while catches up
        state = gr.State([])  # per answer of this conversation: its citations
        # Hidden by CSS, not visible=False, so the page's script can type into it (see PAGE_JS).
        link = gr.Textbox(elem_id="rag-open", elem_classes=["rag-hidden"], show_label=False, container=False)
        answers = gr.State([])  # per answer of this conversation: Answer.to_dict()
        takeaway = gr.Textbox(elem_id="rag-takeaway", elem_classes=["rag-hidden"], show_label=False, container=False)
        outputs = [chat, box, sources, details, cite, article, state, answers, takeaway, copy, save_json, save_md]
        send.click(respond, [box, chat, k, state, answers], outputs, api_visibility="private").then(None, js=in_box_js)
        box.submit(respond, [box, chat, k, state, answers], outputs, api_visibility="private").then(None, js=in_box_js)
        copy.click(None, takeaway, None, js=conversation.COPY_JS, api_visibility="private")
        # .input, not .change: only a user's click opens an article, not the new answer setting the choices
        cite.input(open_citation, [cite, state], article, api_visibility="private").then(None, js=scroll_js)
        link.change(open_link, [link, state], article, api_visibility="private").then(None, js=scroll_js)
        gr.api(api_ask, api_name="ask")
    demo.queue(default_concurrency_limit=4, max_size=128)
    return demo


def launch_options() -> dict:
    """What every launch of the page passes: its style, its script, no tracebacks shown."""
    return {"css": render.CSS + evaluate.CSS, "js": f"() => {{ ({PAGE_JS})(); ({evaluate.PAGE_JS})(); }}", "show_error": False, "footer_links": ["api"], "quiet": True,
            "max_file_size": library.MAX_UPLOAD_BYTES}


def create_server(index_dir: str | Path, embedder=None, library_dir: str | Path | None = None, model=None,
                  store: str | None = None, credentials: tuple[str, str] | None = None, page: bool = True,
                  host: str = "127.0.0.1", port: int = 7860):
    """The ASGI app `rag serve` runs: the HTTP API (ui/api.py) and, unless ``page`` is False, the chat
    page mounted at / beside it, both over one index and library and behind the same ``credentials``."""
    from ui.api import create_api

    backend = open_backend(index_dir, embedder, library_dir, model, store)
    # The query encoder loads lazily (half a second); load it before serving, or every caller of the
    # first burst of questions waits for it.
    warm_up = getattr(backend[0].embedder, "warm_up", None)
    if warm_up is not None:
        warm_up()
    app = create_api(*backend, credentials=credentials, api_only=not page)
    if page:
        import gradio as gr

        demo = build_app(index_dir, backend=backend)
        options = {k: v for k, v in launch_options().items() if k != "quiet"}
        app = gr.mount_gradio_app(app, demo, path="/", auth=credentials, server_name=host, server_port=port, **options)
    return app


def serve(host: str = "127.0.0.1", port: int = 7860, index_dir: str | Path | None = None, auth: str | None = None,
          embedder=None, library_dir: str | Path | None = None, store: str | None = None, page: bool = True) -> None:
    """Serve the chat page and the HTTP API (only the API when ``page`` is False). Binding beyond
    loopback requires ``auth`` ("user:password").

    Raises:
        RagError: a non-loopback host without authentication, or a bad ``auth`` value.
    """
    import uvicorn

    from rag.config import default_index_dir

    credentials = parse_auth(auth or os.environ.get("RAG_AUTH"))
    if not is_loopback(host) and credentials is None:
        raise RagError(f"Refusing to serve on {host} without authentication: add --auth user:password (or set RAG_AUTH), "
                       "or bind to 127.0.0.1")
    app = create_server(Path(index_dir) if index_dir else default_index_dir(), embedder, library_dir, store=store,
                        credentials=credentials, page=page, host=host, port=port)
    what = "the chat and its API" if page else "the HTTP API"
    print(f"Serving {what} on http://{host}:{port} (API documentation at /docs)", flush=True)
    # No access log: a line per request costs more than answering a question (see README, Performance).
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
