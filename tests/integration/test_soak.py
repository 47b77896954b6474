"""Soak: a real `rag serve` answers 8 callers without pause while `rag index` adds and removes articles.

The server reloads when a run has swapped in a new generation, and each of its answers must quote
exactly the text of the generation that gave it. One-shot `rag ask --json` processes, run beside the index
runs, must never show a document whose removal had been indexed before they started (unless a run
putting it back began before they ended). Index runs follow one another for SOAK_SECONDS.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

from conftest import MINI

SOAK_SECONDS = 45
CLIENTS = 8
# Articles that come and go: step k adds the (k+2)-th and removes the k-th (cyclically), so two are
# indexed at a time and each comes back four runs after it went.
ROTATING = {
    "r1_lighthouse.txt": ("Lighthouse keeper logs a stormy year",
                          "The Marlow lighthouse keeper logged 212 storms in 2019. The lamp switched to solar power in 2021.",
                          "How many storms did the Marlow lighthouse keeper log?"),
    "r2_orchard.txt": ("Orchard reports a record harvest",
                       "The Brisk Valley orchard harvested 9,400 pears this autumn. Pickers worked in two shifts.",
                       "How many pears did the Brisk Valley orchard harvest?"),
    "r3_ferry.txt": ("Ferry carries more cyclists",
                     "The Tolland ferry carried 31,000 cyclists last year. Bikes ride free before nine in the morning.",
                     "How many cyclists did the Tolland ferry carry?"),
    "r4_choir.txt": ("Choir grows again",
                     "The Oakridge choir now has 86 singers. It rehearses in the old mill on Tuesdays.",
                     "How many singers does the Oakridge choir have?"),
    "r5_museum.txt": ("Museum shows its clocks",
                      "The Pennick museum owns 1,250 antique clocks. Most of them still keep time.",
                      "How many antique clocks does the Pennick museum own?"),
    "r6_observatory.txt": ("Observatory counts comets",
                           "The Westvale observatory spotted 14 comets in 2022. Volunteers check the images at night.",
                           "How many comets did the Westvale observatory spot?"),
}
NAMES = list(ROTATING)
STEADY = ["Where is Zephyr Dynamics based?", "How many stone ovens does the bakery run?",
          "How much ice did the glacier lose last summer?", "How many visitors did the harbor parade draw?"]


def _text(name: str) -> str:
    title, body, _ = ROTATING[name]
    return f"{title}\n\n{body}\n"


def _rag(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_soak_serve_and_one_shot_asks_while_indexing(tmp_path, launch, no_network):
    from gradio_client import Client

    from rag.store import generations as storage

    corpus, idx = tmp_path / "corpus", tmp_path / "idx"
    shutil.copytree(MINI, corpus)
    contents = {p.relative_to(corpus).as_posix(): p.read_text(encoding="utf-8") for p in corpus.rglob("*") if p.is_file()}
    contents.update({name: _text(name) for name in ROTATING})
    for name in ("r1_lighthouse.txt", "r2_orchard.txt"):
        (corpus / name).write_text(_text(name), encoding="utf-8")
    first = _rag("index", str(corpus), "--index-dir", str(idx), "--quiet")
    assert first.returncode == 0, first.stderr

    with launch(idx, tmp_path) as url:
        snapshot = storage.load(idx)  # the generation the server loaded: nothing has re-indexed since
        assert sorted(d.doc_id for d in snapshot.docs) == ["alpha.txt", "beta.md", "r1_lighthouse.txt", "r2_orchard.txt",
                                                          "sub/gamma.txt"]
        questions = STEADY + [q for _, _, q in ROTATING.values()]
        stop = threading.Event()
        lock = threading.Lock()
        served: list[tuple[str, dict]] = []
        errors: list[str] = []
        removals: dict[str, list[float]] = {n: [] for n in NAMES}  # when an index run dropping it returned
        returns: dict[str, list[float]] = {n: [] for n in NAMES}  # when an index run adding it back started
        one_shots: list[tuple[str, float, float, subprocess.CompletedProcess]] = []

        def client(n: int):
            c = Client(url, verbose=False)
            i = n
            while not stop.is_set():
                q = questions[i % len(questions)]
                i += 1
                try:
                    d = c.predict(q, api_name="/ask")
                except Exception as e:  # counted; the test fails on any
                    with lock:
                        errors.append(f"server, {q!r}: {type(e).__name__}: {e}")
                    continue
                with lock:
                    served.append((q, d))

        def one_shot(q: str):
            started = time.monotonic()
            out = _rag("ask", q, "--json", "--index-dir", str(idx), timeout=120)
            with lock:
                one_shots.append((q, started, time.monotonic(), out))

        def one_shots_meanwhile():
            i = 0
            while not stop.is_set():
                one_shot(ROTATING[NAMES[i % len(NAMES)]][2])
                i += 1

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        threads.append(threading.Thread(target=one_shots_meanwhile))
        for t in threads:
            t.start()
        t0 = time.monotonic()
        runs = 0
        try:
            while runs < 2 or time.monotonic() - t0 < SOAK_SECONDS:
                added, removed = NAMES[(runs + 2) % len(NAMES)], NAMES[runs % len(NAMES)]
                (corpus / added).write_text(_text(added), encoding="utf-8")
                (corpus / removed).unlink()
                # beside this run, a one-shot ask about the article the previous run removed
                asker = threading.Thread(target=one_shot, args=(ROTATING[NAMES[(runs - 1) % len(NAMES)]][2],))
                if runs:
                    asker.start()
                returns[added].append(time.monotonic())
                out = _rag("index", str(corpus), "--index-dir", str(idx), "--quiet")
                removals[removed].append(time.monotonic())
                if runs:
                    asker.join()
                if out.returncode != 0:
                    with lock:
                        errors.append(f"rag index, run {runs}: {out.stderr.strip()}")
                    break
                runs += 1
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=300)
        soak = time.monotonic() - t0

    assert not errors, errors[:5]
    assert runs >= 2 and served and one_shots
    # the server follows the index (it reloads when a run swapped in a new generation) and quotes
    # exactly the text of whichever generation answered: the steady documents as loaded at first, a
    # rotating one as it is always written
    for q, d in served:
        for c in list(d["citations"]) + [{**p, "quote": p["text"]} for p in d["passages"]]:
            doc = snapshot.document(c["source"])
            text = doc.text if doc is not None else _text(c["source"]) if c["source"] in ROTATING else None
            assert text is not None and text[c["start"]:c["end"]] == c["quote"], (q, c)
    # a one-shot ask never shows an article whose removal was indexed before it started, unless a run
    # putting it back had begun before it ended
    checked = 0
    for q, started, ended, out in one_shots:
        assert out.returncode == 0, (q, out.stderr)
        d = json.loads(out.stdout)
        gone = {n for n in NAMES if any(r < started and not any(r < a < ended for a in returns[n]) for r in removals[n])}
        checked += bool(gone)
        shown = {c["source"] for c in d["citations"]} | {p["source"] for p in d["passages"]}
        assert not shown & gone, (q, sorted(shown & gone))
        for c in d["citations"]:
            assert contents[c["source"]][c["start"]:c["end"]] == c["quote"], (q, c)
        for p in d["passages"]:
            assert contents[p["source"]][p["start"]:p["end"]] == p["text"], (q, p)
    assert checked >= 1  # the second run always has an ask beside it about the article the first removed
    print(f"soak {soak:.0f} s: {runs} index runs, {len(served)} server answers, {len(one_shots)} one-shot asks")
