"""The web page in a real headless browser (Debian's chromium driven by Playwright)."""
import shutil
from pathlib import Path

import pytest

from test_service import start_server

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser_page(tiny_model):
    # a missing browser is a missing install step (the README's test command installs it), not a
    # reason to skip the page: fail, saying what to install
    assert CHROMIUM is not None, "the page test needs Debian's chromium: apt-get install chromium"
    from playwright import sync_api as playwright
    proc, url = start_server(tiny_model)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1000, "height": 1300})
        yield page, url
        browser.close()
    proc.terminate()
    proc.wait(10)


def test_page_rates_a_review_and_shows_why(browser_page):
    page, url = browser_page
    page.goto(url + "/")
    assert page.title() == "reviewlstm"
    page.fill("#text", "A gorgeous, witty, seductive movie, but far too long.")
    page.click("#go")
    page.wait_for_selector("#stars", timeout=30_000)
    assert page.inner_text("#rating") in {"1", "2", "3", "4", "5"}
    words = page.locator("#heatmap span")
    assert words.count() == 13  # the PTB tokens of the review
    assert page.locator("canvas[data-gate]").count() == 4  # learn, forget gate, remember, use
    assert page.locator("#trajectory circle").count() == 13
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)
    assert (ARTIFACTS / "page.png").stat().st_size > 10_000


def test_page_shows_errors(browser_page):
    page, url = browser_page
    page.goto(url + "/")
    page.fill("#text", "far too long " * 500)
    page.click("#go")
    page.wait_for_function("document.getElementById('error').textContent.length > 0", timeout=30_000)
    assert "max_explain_chars" in page.inner_text("#error")
    page.fill("#text", "   ")
    page.click("#go")
    page.wait_for_function("document.getElementById('error').textContent.includes('first')", timeout=10_000)
    assert page.locator("#stars").count() == 0
