"""`rag eval` end to end with the real model: BEIR and SQuAD fixtures are indexed into a cache."""
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import DATA, SEEDS

ROOT = Path(__file__).parents[2]


def rag(*args, cwd, env):
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=600)


def test_eval_beir_and_squad_end_to_end(tmp_path):
    env = {"RAG_CACHE_DIR": str(tmp_path / "cache")}
    out = rag("eval", str(DATA / "beir_mini"), "--report", str(tmp_path / "beir"), "--predictions", str(tmp_path / "b.jsonl"),
              cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    rep = json.loads((tmp_path / "beir" / "report.json").read_text())
    # three one-topic documents: the real model and BM25 put each query's document first
    assert rep["metrics"]["hit@1"] == 1.0 and rep["metrics"]["questions"] == 3
    assert rep["metrics"]["index_build_s"] > 0 and rep["dataset"]["kind"] == "beir"
    preds = [json.loads(l) for l in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == ["q1", "q2", "q3"]
    assert all(p["outcome"] in ("answer", "possible", "refuse") and p["abstained"] == (p["outcome"] == "refuse")
               and 0.0 <= p["confidence"] <= 1.0 for p in preds)
    assert len([p for p in (tmp_path / "cache").iterdir() if p.name != "models"]) == 1  # beside the model export
    out = rag("eval", str(DATA / "squad_mini.json"), "--report", str(tmp_path / "squad"), cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    rep = json.loads((tmp_path / "squad" / "report.json").read_text())
    assert (rep["metrics"]["answerable"], rep["metrics"]["unanswerable"], rep["metrics"]["citation_exact"]) == (2, 1, 1.0)
    cmp = rag("eval", "--compare", str(tmp_path / "beir" / "report.json"), str(tmp_path / "squad" / "report.json"),
              cwd=tmp_path, env=env)
    assert cmp.returncode == 0 and cmp.stdout.splitlines()[0].split() == ["metric", "A", "B", "B-A"]


def test_eval_our_question_set_on_the_seeds(tmp_path):
    env = {"RAG_INDEX_DIR": str(tmp_path / "idx")}
    assert rag("index", str(SEEDS), cwd=tmp_path, env=env).returncode == 0
    out = rag("eval", str(ROOT / "evals" / "questions.jsonl"), "--limit", "20", "--report", str(tmp_path / "r"),
              cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["metrics"]["questions"] == 20 and rep["metrics"]["citation_exact"] == 1.0 and rep["metrics"]["errors"] == 0
    assert "accuracy" in out.stdout and (tmp_path / "r" / "types.png").is_file()
    m = rep["metrics"]
    assert m["outcome_answer"] + m["outcome_possible"] + m["outcome_refuse"] == 20
    assert 0.0 <= m["ece"] <= 1.0 and sum(b["n"] for b in rep["calibration"]["bins"]) == 20
    assert {"ece", "concise_containment", "abstain_false_abstain_rate"} <= set(rep["by_split"]["tune"])
    assert all("ece" in row for row in rep["by_type"].values())
    assert (tmp_path / "r" / "reliability.png").is_file() and "## Calibration" in (tmp_path / "r" / "report.md").read_text()
    assert next(l for l in out.stdout.splitlines() if l.startswith("ece ")).split()[1] == f"{m['ece']:.3f}"
