"""A real browser: Debian's Chromium driven by Playwright against the real server."""
import os
import shutil


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def test_ask_read_and_check_the_source_in_a_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server)
        page.locator("#rag-question textarea").fill("Where is iFlytek based?")
        page.locator("#rag-ask").click()
        bot = page.locator("#rag-chat .message.bot, #rag-chat [data-testid='bot']").last
        expect(bot).to_contain_text("[1]", timeout=60_000)
        expect(bot).to_contain_text("iFlytek based in Hefei")
        quote = page.locator("#rag-sources mark.rag-quote").first
        expect(quote).to_have_text("A case in point is voice recognition software firm iFlytek based in Hefei.")
        page.get_by_label("[1] 000_27760e3598894cce.txt").check()
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
