"""A real browser: Debian's Chromium driven by Playwright against the real server.

Without Chromium the browser test is skipped with one line saying how to enable it; under CI it fails
instead, so a CI run can never pass without having driven a browser.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser import ARGS, chromium


def test_ask_read_and_check_the_source_in_a_browser(request, tmp_path):
    executable = chromium()  # before the server starts: a skip costs nothing
    server = request.getfixturevalue("server")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server)
        page.locator("#rag-question textarea").fill("Where is iFlytek based?")
        page.locator("#rag-ask").click()
        bot = page.locator("#rag-chat .message.bot, #rag-chat [data-testid='bot']").last
        expect(bot).to_contain_text("[1]", timeout=60_000)
        expect(bot).to_contain_text("iFlytek based in Hefei")
        # the confidence in words, with the number on hover
        badge = bot.locator(".rag-confidence")
        expect(badge).to_have_text(re.compile(r"^(Confident answer|Possible answer — check the source)$"))
        expect(badge).to_have_attribute("title", re.compile(r"^confidence 0\.\d\d$|^confidence 1\.00$"))
        quote = page.locator("#rag-sources mark.rag-quote").first
        expect(quote).to_have_text("A case in point is voice recognition software firm iFlytek based in Hefei.")
        label = page.locator("#rag-cite label").first  # the title, then the file
        expect(label).to_have_text("[1] BEIJING – Innovation: Anhui bets big on industries of the future — 000_27760e3598894cce.txt")
        label.click()
        highlight = page.locator("#rag-article #rag-highlight")
        expect(highlight).to_have_text("A case in point is voice recognition software firm iFlytek based in Hefei.")
        expect(highlight).to_be_in_viewport(timeout=10_000)
        page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
        assert (tmp_path / "chat.png").stat().st_size > 10_000
        if os.environ.get("RAG_SCREENSHOT"):  # how docs/screenshot.png was made, once
            shutil.copy(tmp_path / "chat.png", os.environ["RAG_SCREENSHOT"])
        page.set_viewport_size({"width": 390, "height": 844})  # phone width: still usable, nothing wider than the screen
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400
        browser.close()


# ------------------------------------------------------------------------------------------ without a browser

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]


def _pytest_this_file(ci: str | None):
    """The browser test in a child pytest with RAG_CHROMIUM pointing nowhere: (exit code, output)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env.update(RAG_CHROMIUM="/nonexistent/chromium", COLUMNS="500", **({"CI": ci} if ci is not None else {}))
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
                          f"{HERE}::test_ask_read_and_check_the_source_in_a_browser"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    return out.returncode, out.stdout


LINE = ("Chromium not found at RAG_CHROMIUM=/nonexistent/chromium; install Debian's chromium "
        "package (apt-get install chromium) or set RAG_CHROMIUM=/path/to/chromium")


@pytest.mark.parametrize("ci", [None, "false"])
def test_without_chromium_the_browser_test_is_skipped_with_one_line(ci):
    code, out = _pytest_this_file(ci)
    assert code == 0, out
    assert re.search(r"^=+ 1 skipped in [\d.]+s =+$", out, re.M), out
    said = [line for line in out.splitlines() if "Chromium" in line]
    assert len(said) == 1 and re.fullmatch(r"SKIPPED \[1\] tests/browser\.py:\d+: (.*)", said[0]).group(1) \
        == f"browser test skipped: {LINE}"


def test_without_chromium_under_ci_the_browser_test_fails():
    code, out = _pytest_this_file("true")
    assert code == 1, out
    assert re.search(r"^=+ 1 failed in [\d.]+s =+$", out, re.M), out
    assert ("FAILED tests/integration/test_browser.py::test_ask_read_and_check_the_source_in_a_browser - "
            f"Failed: browser test failed (under CI a missing browser is a failure): {LINE}") in out.splitlines()


# ------------------------------------------------------------------------------------------ make test

def _make_dry_run(tmp_path, uid: int, apt: bool, chromium: bool = False, rag_chromium: str | None = None) -> list[str]:
    """What `make -n test` would run, on a PATH of only make, id (saying ``uid``), and optionally
    apt-get and chromium; the venv install steps left out."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").symlink_to(shutil.which("make"))
    tools = {"id": f"echo {uid}", **({"apt-get": "exit 1"} if apt else {}), **({"chromium": "exit 1"} if chromium else {})}
    for name, body in tools.items():  # a dry run never runs apt-get or chromium
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("RAG_CHROMIUM", "MAKEFLAGS", "MAKELEVEL")}
    env["PATH"] = str(bin_dir)
    if rag_chromium:
        env["RAG_CHROMIUM"] = rag_chromium
    out = subprocess.run(["make", "-s", "-n", "test"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if not any(w in line for w in ("pip install", "-m venv", "touch "))]


INSTALL = ("DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
           "chromium \\", '  || echo "make: could not install chromium; the browser test will say what to do"')
PYTEST = ".venv/bin/python -m pytest"


def test_make_test_installs_a_missing_chromium_as_root_with_apt(tmp_path):
    assert _make_dry_run(tmp_path, uid=0, apt=True) == [*INSTALL, PYTEST]


@pytest.mark.parametrize("uid, apt, chromium, rag_chromium", [
    (1000, True, False, None),               # not root: the browser test skips, saying how to enable it
    (0, False, False, None),                 # no apt-get: the same
    (0, True, True, None),                   # chromium is already there
    (0, True, False, "/opt/other/chrome"),   # the user named another browser
])
def test_make_test_goes_straight_to_pytest_otherwise(tmp_path, uid, apt, chromium, rag_chromium):
    assert _make_dry_run(tmp_path, uid, apt, chromium, rag_chromium) == [PYTEST]


@pytest.mark.parametrize("ci, seen", [(None, "true"), ("1", "1")])
def test_ci_runs_make_test_with_ci_set(tmp_path, ci, seen):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").write_text('#!/bin/sh\necho "CI=$CI make $*"\n')
    (bin_dir / "make").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    if ci is not None:
        env["CI"] = ci
    out = subprocess.run(["bash", str(ROOT / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (0, f"CI={seen} make test\n"), out.stderr
