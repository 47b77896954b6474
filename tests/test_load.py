"""evals/load.py and the bench throughput step: every mismatch and error is logged in full and counted.

A fake gradio_client stands in for the server, so the bookkeeping is checked without one."""
import json
import sys
import types

import pytest

from evals import bench, load

QUESTIONS = [json.loads(line)["question"] for line in load.QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


def answer(q: str, text: str = "The answer. [1]", start: int = 0) -> dict:
    return {"question": q, "answer": text, "abstained": False,
            "citations": [{"n": 1, "source": "a.txt", "title": None, "date": None, "start": start, "end": 11, "quote": "The answer."}],
            "passages": [], "timings_ms": {"total": 1.0}}


class FakeServer:
    """Answers every question the same way, except the Nth call for ``odd`` (counted across clients),
    which cites other characters, and ``broken``, which raises."""

    def __init__(self, odd: str | None = None, nth: int = 2, broken: str | None = None, swap: str | None = None):
        self.odd, self.nth, self.broken, self.swap = odd, nth, broken, swap
        self.calls: dict[str, int] = {}

    def module(self):
        server = self

        class Client:
            def __init__(self, url, verbose=False):
                assert url == "http://127.0.0.1:9/"

            def predict(self, q, api_name):
                assert api_name == "/ask"
                server.calls[q] = server.calls.get(q, 0) + 1
                if q == server.broken and server.calls[q] > 1:
                    raise RuntimeError("the queue is full")
                if q == server.odd and server.calls[q] == server.nth:
                    return answer(q, start=1)
                if q == server.swap and server.calls[q] > 1:  # the same answer, meant for another question
                    return answer(QUESTIONS[0])
                return answer(q)
        return types.SimpleNamespace(Client=Client)


def run(monkeypatch, server, tmp_path, clients=4, count=len(QUESTIONS) + 3):
    monkeypatch.setitem(sys.modules, "gradio_client", server.module())
    return load.run("http://127.0.0.1:9/", clients=clients, count=count, log=tmp_path / "log.jsonl")


def test_matching_answers_log_nothing(monkeypatch, tmp_path):
    r = run(monkeypatch, FakeServer(), tmp_path)
    assert (r["answered"], r["errors"], r["mismatches"], r["unfinished"]) == (len(QUESTIONS) + 3, 0, 0, 0)
    assert (tmp_path / "log.jsonl").read_text() == ""


def test_a_mismatch_is_logged_with_both_answers_in_full(monkeypatch, tmp_path):
    odd, broken = QUESTIONS[5], QUESTIONS[7]
    r = run(monkeypatch, FakeServer(odd=odd, broken=broken), tmp_path)
    assert (r["answered"], r["errors"], r["mismatches"], r["unfinished"]) == (len(QUESTIONS) + 2, 1, 1, 0)
    assert r["first_mismatches"] == [odd] and r["first_errors"] == [f"{broken}: RuntimeError: the queue is full"]
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert rows == [{"kind": "error", "clients": 4, "question": broken, "error": "RuntimeError: the queue is full"},
                    {"kind": "mismatch", "clients": 4, "question": odd, "sequential": answer(odd), "concurrent": answer(odd, start=1)}]


def test_an_answer_to_another_question_is_a_mismatch(monkeypatch, tmp_path):
    swapped = QUESTIONS[10]
    r = run(monkeypatch, FakeServer(swap=swapped), tmp_path)
    assert r["mismatches"] == 1 and r["first_mismatches"] == [swapped]


def test_bench_throughput_runs_32_callers_on_256_questions_and_reports_mismatches(monkeypatch, tmp_path):
    odd = QUESTIONS[3]
    server = FakeServer(odd=odd, nth=2)  # the first level asks it once in its sequential pass, then the odd call
    monkeypatch.setitem(sys.modules, "gradio_client", server.module())

    class Proc:
        def terminate(self):
            self.stopped = True

        def wait(self, timeout):
            return 0
    monkeypatch.setattr(bench, "_start_server", lambda index_dir: (Proc(), "http://127.0.0.1:9/", 0.1))
    api_calls = []

    def api_client(url, auth=None):  # the HTTP API's caller, answering like the same fake server
        api_calls.append(url)
        return server.module().Client(url)
    monkeypatch.setattr(load, "ApiClient", api_client)
    r = bench.bench_throughput(tmp_path / "idx", tmp_path)
    assert {k: (v["target"], v["clients"], v["questions"], v["answered"]) for k, v in r.items()} == {
        "1": ("gradio", 1, 48, 48), "4": ("gradio", 4, 48, 48), "16": ("gradio", 16, 48, 48),
        "32": ("gradio", 32, 256, 256), "api-1": ("api", 1, 256, 256), "api-16": ("api", 16, 512, 512)}
    assert len(api_calls) == (1 + 1) + (1 + 16)  # a sequential caller and the concurrent ones, per level
    # the odd question is among the first 48, so level 1 sees it in its concurrent pass
    assert [v["mismatches"] for v in r.values()] == [1, 0, 0, 0, 0, 0]
    rows = [json.loads(line) for line in (tmp_path / bench.MISMATCH_LOG).read_text().splitlines()]
    assert [(row["kind"], row["clients"], row["question"]) for row in rows] == [("mismatch", 1, odd)]
    assert rows[0]["concurrent"]["citations"][0]["start"] == 1 and rows[0]["sequential"]["citations"][0]["start"] == 0
    page = bench.markdown({"machine": {"cpu": "x", "cores": 2, "torch_threads": 2, "faiss_threads": 1, "python": "3"},
                           "latency": {"query_p50_over_encode": 1, "ask_p50_ms": 1, "encode_p50_ms": 1, "ask_p95_ms": 1,
                                       "query_p50_over_torch_encode": 0.5, "torch_encode_p50_ms": 2},
                           "build": {"build_over_encode": 1, "build_s": 1, "encode_all_s": 1, "passages": 1, "sentences": 1},
                           "startup": {"help_s": 0.1, "ask_s": 1, "serve_s": 1}, "scale": [], "throughput": r})
    assert "| Gradio `ask` | 32 | 256 |" in page and "| `/api/ask` | 16 | 512 |" in page
    assert (f"**1 callers: 0 errors, 1 answers differing from the sequential ones** (first: {odd}); each is logged in "
            f"full in `{bench.MISMATCH_LOG}`.") in page


def test_any_difference_but_the_timings_is_a_mismatch():
    same = answer("q")
    assert load._key({**same, "timings_ms": {"total": 99.0}}) == load._key(same)
    for changed in ({**same, "confidence": 0.5}, {**same, "outcome": "possible"},
                    {**same, "passages": [{"rank": 1, "source": "a.txt", "start": 0, "end": 11, "score": 0.1, "text": "x"}]}):
        assert load._key(changed) != load._key(same)


@pytest.mark.parametrize("url", ["http://10.0.0.1:7860/", "http://example.com/"])
def test_load_runs_against_loopback_only(url):
    with pytest.raises(ValueError, match="loopback only"):
        load.run(url, clients=1, count=1)
