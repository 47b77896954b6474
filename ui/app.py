"""The Gradio chat page: ask, read a quoted answer, check every source in one click.

Calls rag.pipeline only. The named API endpoint ``ask`` returns ``Answer.to_dict()``.
"""
from __future__ import annotations

import ipaddress
import os
import threading
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from rag.errors import RagError  # noqa: E402
from ui import library, render  # noqa: E402

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

    def __init__(self, index_dir: Path, embedder=None):
        from rag.pipeline import Assistant

        self.index_dir = index_dir
        self._lock = threading.Lock()
        self.assistant = Assistant.load(index_dir, embedder=embedder)
        self.embedder = self.assistant.embedder  # reloads reuse the loaded model

    def reload(self) -> None:
        from rag.pipeline import Assistant

        fresh = Assistant.load(self.index_dir, embedder=self.embedder)
        with self._lock:
            self.assistant = fresh


def example_questions(index, n: int = 4) -> list[str]:
    """Starter prompts drawn from the indexed articles: their short titles, as keyword queries."""
    out = []
    for d in index.docs:
        if d.title and 3 <= len(d.title.split()) <= 12:
            out.append(d.title.split(" – ")[-1].split(" - ")[0].strip())
        if len(out) >= n:
            break
    return out


def build_app(index_dir: str | Path, embedder=None, library_dir: str | Path | None = None):
    import gradio as gr

    holder = Holder(Path(index_dir), embedder)
    lib = library.Library(Path(index_dir), Path(library_dir) if library_dir else Path(index_dir).parent / "library",
                          holder.embedder)
    headers = ["source", "title", "date", "KB", "passages"]

    def table():
        idx = holder.assistant.index
        return ([[r.source, r.title, r.date, r.kb, r.passages] for r in library.rows(idx)],
                gr.update(choices=[d.doc_id for d in idx.docs], value=None))

    def upload(files, progress=gr.Progress()):
        files = files or []
        if not files:
            raise gr.Error("Choose one or more .txt or .md files first.")
        progress(0.1, desc="Checking and indexing…")
        pairs = [(Path(f), Path(f).name) for f in (files if isinstance(files, list) else [files])]
        try:
            added, problems = lib.add(pairs, index=holder.assistant.index, after=holder.reload)
        except RagError as e:
            raise gr.Error(str(e)) from None
        progress(1.0)
        lines = [f"Added {', '.join(added)}." if added else "Nothing was added."] + problems
        return (*table(), "\n\n".join(lines))

    def remove(doc_id):
        if not doc_id:
            raise gr.Error("Choose a document to remove.")
        try:
            message = lib.remove(holder.assistant.index, doc_id, after=holder.reload)
        except RagError as e:
            raise gr.Error(str(e)) from None
        return (*table(), message)

    def respond(message: str, history: list[dict], k: float):
        message = (message or "").strip()
        if not message:
            raise gr.Error("Type a question first.")
        asked = [m["content"] for m in history if m.get("role") == "user" and isinstance(m.get("content"), str)]
        assistant = holder.assistant
        try:
            answer = assistant.ask(message, history=asked, k=int(k))
        except RagError as e:
            raise gr.Error(str(e)) from None
        history = history + [{"role": "user", "content": message},
                             {"role": "assistant", "content": render.chat_markdown(answer)}]
        choices = [(f"[{c.n}] {c.doc_id}", f"{c.n}") for c in answer.citations]
        first = answer.citations[0] if answer.citations else None
        article = render.article_html(assistant.index, first.doc_id, first.start, first.end) if first else \
            render.article_html(assistant.index, answer.hits[0].chunk.doc_id) if answer.hits else ""
        # The quote too: the library may change before a citation is clicked (see render.citation_html).
        state = [(c.doc_id, c.start, c.end, c.quote) for c in answer.citations]
        return (history, "", render.sources_html(answer, assistant.index), render.details_html(answer),
                gr.update(choices=choices, value=choices[0][1] if choices else None), article, state)

    def open_citation(choice: str | None, state: list):
        if not choice or not state:
            return gr.update()
        n = int(choice) - 1
        if not 0 <= n < len(state):
            return render.article_html(holder.assistant.index, None)
        return render.citation_html(holder.assistant.index, *state[n])

    def api_ask(question: str) -> dict:
        try:
            return holder.assistant.ask(question).to_dict()
        except RagError as e:
            raise gr.Error(str(e)) from None

    # After an answer, scroll only inside the article box (the page stays on the chat, which matters
    # on a phone); after a citation click, bring the highlighted sentence itself into view.
    in_box_js = ("() => { setTimeout(() => { const m = document.getElementById('rag-highlight'); if (!m) return; "
                 "const box = m.closest('.rag-article'); if (box) box.scrollTop = m.offsetTop - box.offsetTop - box.clientHeight / 3; }, 50); }")
    scroll_js = "() => { setTimeout(() => { const m = document.getElementById('rag-highlight'); if (m) m.scrollIntoView({block: 'center'}); }, 50); }"

    with gr.Blocks(title="Ask the articles") as demo:
        gr.Markdown("## Ask the articles\nEvery answer quotes the articles word for word; each **[n]** points at the exact sentence.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                chat = gr.Chatbot(label="Chat", height=460, elem_id="rag-chat",
                                  placeholder="Ask about the indexed articles, or pick an example below.")
                with gr.Row():
                    box = gr.Textbox(show_label=False, placeholder="Ask a question…", scale=5, elem_id="rag-question", lines=1)
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="rag-ask")
                gr.Examples(example_questions(holder.assistant.index), inputs=box, label="Examples")
                with gr.Accordion("Retrieval details", open=False):
                    k = gr.Slider(1, 20, value=5, step=1, label="Passages to retrieve (k)")
                    details = gr.HTML(elem_id="rag-details")
            with gr.Column(scale=2, min_width=300):
                sources = gr.HTML(label="Sources", elem_id="rag-sources")
                cite = gr.Radio(choices=[], label="Open the article of citation", elem_id="rag-cite")
                article = gr.HTML(elem_id="rag-article")
        with gr.Accordion("Library", open=False, elem_id="rag-library"):
            rows0 = [[r.source, r.title, r.date, r.kb, r.passages] for r in library.rows(holder.assistant.index)]
            docs = gr.Dataframe(value=rows0, headers=headers, interactive=False, wrap=True, label="Indexed documents")
            with gr.Row():
                files = gr.File(file_count="multiple", file_types=[".txt", ".md"], type="filepath",
                                label="Add .txt or .md articles (10 MB each at most)")
                with gr.Column():
                    add_btn = gr.Button("Add to library", elem_id="rag-add")
                    doomed = gr.Dropdown(choices=[d.doc_id for d in holder.assistant.index.docs], label="Document to remove")
                    remove_btn = gr.Button("Remove document", variant="stop", elem_id="rag-remove")
            status = gr.Markdown(elem_id="rag-library-status")
        add_btn.click(upload, files, [docs, doomed, status], api_name="upload", concurrency_id="library", concurrency_limit=1)
        remove_btn.click(remove, doomed, [docs, doomed, status], api_name="remove", concurrency_id="library",
                         concurrency_limit=1)
        state = gr.State([])
        outputs = [chat, box, sources, details, cite, article, state]
        send.click(respond, [box, chat, k], outputs, api_visibility="private").then(None, js=in_box_js)
        box.submit(respond, [box, chat, k], outputs, api_visibility="private").then(None, js=in_box_js)
        # .input, not .change: only a user's click opens an article, not the new answer setting the choices
        cite.input(open_citation, [cite, state], article, api_visibility="private").then(None, js=scroll_js)
        gr.api(api_ask, api_name="ask")
    demo.queue(default_concurrency_limit=4, max_size=128)
    return demo


def serve(host: str = "127.0.0.1", port: int = 7860, index_dir: str | Path | None = None, auth: str | None = None,
          embedder=None, library_dir: str | Path | None = None) -> None:
    """Serve the chat. Binding beyond loopback requires ``auth`` ("user:password").

    Raises:
        RagError: a non-loopback host without authentication, or a bad ``auth`` value.
    """
    from rag.config import default_index_dir

    credentials = parse_auth(auth or os.environ.get("RAG_AUTH"))
    if not is_loopback(host) and credentials is None:
        raise RagError(f"Refusing to serve on {host} without authentication: add --auth user:password (or set RAG_AUTH), "
                       "or bind to 127.0.0.1")
    demo = build_app(Path(index_dir) if index_dir else default_index_dir(), embedder, library_dir)
    print(f"Serving the chat on http://{host}:{port}", flush=True)
    demo.launch(server_name=host, server_port=port, auth=credentials, css=render.CSS, show_error=False,
                footer_links=["api"], quiet=True, max_file_size=library.MAX_UPLOAD_BYTES)
