"""The issue's promise for the Milvus store, end to end with the real model: `rag index seeds/ --store
milvus-lite:…` then `rag serve --store …` answers as the local store does."""
import json
import os
import subprocess
import sys

from conftest import SEEDS

QUESTIONS = ["Where is iFlytek based?", "What did Hefei invest in?", "Which company makes electric vehicles in Hefei?",
             "How many robot makers are in Wuhu?", "Who won the 2018 FIFA World Cup?"]


def rag(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRPC_VERBOSITY": "NONE"}
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=600)


def test_rag_serve_on_milvus_lite_answers_as_the_local_store(tmp_path, launch):
    from gradio_client import Client

    spec = f"milvus-lite:{tmp_path / 'milvus.db'}"
    # Two folders, so a server that ignored --store would find no local index there and not start.
    for store, folder in (("local", "local"), (spec, "milvus")):
        out = rag("index", str(SEEDS), "--index-dir", str(tmp_path / folder), "--store", store, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
    local = [json.loads(rag("ask", q, "--json", "--index-dir", str(tmp_path / "local"), cwd=tmp_path).stdout)
             for q in QUESTIONS]
    assert not (tmp_path / "milvus" / "CURRENT").exists()
    with launch(tmp_path / "milvus", tmp_path, "--store", spec) as url:
        client = Client(url, verbose=False)
        served = [client.predict(q, api_name="/ask") for q in QUESTIONS]
    key = lambda d: (d["outcome"], d["answer"], [(c["source"], c["start"], c["end"], c["quote"]) for c in d["citations"]])  # noqa: E731
    assert [key(d) for d in served] == [key(d) for d in local]
    assert sum(d["outcome"] != "refuse" for d in local) >= 3 and local[-1]["outcome"] == "refuse"
