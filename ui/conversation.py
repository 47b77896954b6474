"""The chat's take-away: the latest answer as Markdown for the clipboard, and the whole conversation
as files to download (JSON: a list of `rag ask --json` answers; Markdown), both made by rag.takeaway."""
from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

from rag.takeaway import conversation_json, conversation_markdown

ROOT_NAME = "rag-conversations"
KEEP_SECONDS = 6 * 3600  # the page's files older than this are removed when new ones are written


def files(turns: list[dict]) -> tuple[str, str]:
    """(conversation.json, conversation.md) of ``turns`` (answer dicts, oldest first), written to a
    new folder: each answer gets fresh files, so a download never mixes two states of a conversation."""
    folder = fresh_folder(ROOT_NAME)
    (folder / "conversation.json").write_text(conversation_json(turns), encoding="utf-8")
    (folder / "conversation.md").write_text(conversation_markdown(turns), encoding="utf-8")
    return str(folder / "conversation.json"), str(folder / "conversation.md")


def fresh_folder(name: str, root: Path | None = None) -> Path:
    """A new, empty folder in ``root``/``name`` (default root: the temp dir, which Gradio serves files
    from); folders there older than KEEP_SECONDS are removed first, so the page's files don't pile up."""
    parent = Path(root or tempfile.gettempdir()) / name
    parent.mkdir(parents=True, exist_ok=True)
    _prune(parent)
    folder = parent / uuid.uuid4().hex
    folder.mkdir()
    return folder


def _prune(root: Path) -> None:
    cutoff = time.time() - KEEP_SECONDS
    for d in root.iterdir():
        try:
            if d.stat().st_mtime < cutoff:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:  # removed meanwhile by another request
            pass


# Writes the hidden #rag-takeaway box's Markdown to the clipboard. navigator.clipboard exists only on
# secure pages (https, or loopback): served over plain http on a network, a hidden textarea and
# execCommand('copy') do it instead.
COPY_JS = r"""
async (md) => {
  const status = document.querySelector('#rag-copy-status');
  let ok = false;
  try {
    await navigator.clipboard.writeText(md);
    ok = true;
  } catch (e) {
    const t = document.createElement('textarea');
    t.value = md;
    t.setAttribute('readonly', '');
    t.style.position = 'fixed';
    t.style.opacity = '0';
    document.body.appendChild(t);
    t.select();
    try { ok = document.execCommand('copy'); } catch (e2) { ok = false; }
    t.remove();
  }
  if (status) {
    status.textContent = ok ? 'Copied the answer with its sources as Markdown.' : 'The browser refused to copy.';
    clearTimeout(window.ragCopyTimer);
    window.ragCopyTimer = setTimeout(() => { status.textContent = ''; }, 4000);
  }
  return md;
}
"""
