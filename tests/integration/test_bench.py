"""`rag bench --quick` runs end to end and writes its report. No time is asserted: only the shape."""
import json
import os
import subprocess
import sys


def test_bench_quick_writes_its_report(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rag.cli", "bench", "--quick", "--sizes", "3000", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=900, cwd=tmp_path,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"})
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads((tmp_path / "bench.json").read_text())
    assert set(r) >= {"machine", "latency", "build", "startup", "throughput", "scale", "library"}
    assert r["machine"]["cores"] == os.cpu_count()
    assert r["latency"]["query_p50_over_encode"] > 0 and r["build"]["build_over_encode"] > 0
    assert r["latency"]["query_p50_over_torch_encode"] > 0
    assert [row["passages"] for row in r["scale"]] == [3000]
    assert r["scale"][0]["faiss_index"] == "IndexFlatIP" and r["scale"][0]["recall_at_10"] == 1.0  # exact search
    assert all((level["errors"], level["mismatches"]) == (0, 0) for level in r["throughput"].values())
    assert [row["mb"] for row in r["library"]] == [1]  # --quick: the smallest library only
    row = r["library"][0]
    assert row["documents"] > 100 and row["add_s"] >= row["add_overhead_s"] > 0 and row["remove_overhead_s"] > 0
    assert r["goals"]["library_add_overhead_s"] == 1.0
    md = (tmp_path / "bench.md").read_text()
    assert "| query p50 / one torch encode p50 |" in md and "| adding an article to a 1 MB library, beyond embedding it |" in md
