"""The web page in a real headless browser (Debian's chromium driven by Playwright)."""
import shutil
from pathlib import Path

import pytest

from support import start_server

pytestmark = pytest.mark.usefixtures("compiled_kernel")  # runs models: the compiled loop built first

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
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
    # the served model was trained with a validation slice: its rating set shows beside the rating
    assert "90% sure:" in page.inner_text("#rating-set")
    words = page.locator("#heatmap span")
    assert words.count() == 13  # the PTB tokens of the review
    gates = page.locator(".gate[data-gate]")
    assert gates.count() == 5  # learn, forget (LTM⊙f), forget gate f, remember, use
    names = [n.strip() for n in page.locator(".gate .name").all_inner_texts()]
    assert names == ["learn", "forget", "forget gate f", "remember", "use"]  # the seed's names, not identifiers
    assert "_" not in " ".join(page.locator(".gate .what").all_inner_texts())
    assert page.locator("#trajectory circle").count() == 13
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)
    assert (ARTIFACTS / "page.png").stat().st_size > 10_000


def test_gate_maps_a_person_can_read(browser_page):
    page, url = browser_page
    page.goto(url + "/")
    page.fill("#text", "A gorgeous, witty, seductive movie, but far too long.")
    page.click("#go")
    page.wait_for_selector(".gate[data-gate='learn'] canvas", timeout=30_000)
    learn = page.locator(".gate[data-gate='learn']")
    # a colour scale with its values (the forget gate's runs 0..1, the others symmetric about 0)
    lo, hi = learn.locator(".scale span").nth(0).inner_text(), learn.locator(".scale span").nth(2).inner_text()
    assert float(lo) == -float(hi) and float(hi) > 0
    f = page.locator(".gate[data-gate='forget_gate'] .scale span")
    assert (f.nth(0).inner_text(), f.nth(2).inner_text()) == ("0.00", "1.00")
    # the units that changed most, a few at a time; "show all" draws every unit
    canvas = learn.locator("canvas")
    shown = page.evaluate("JSON.parse(document.querySelector(\".gate[data-gate='learn'] canvas\").dataset.rows).length")
    assert shown == 12
    learn.locator("button.all").click()
    every = page.evaluate("JSON.parse(document.querySelector(\".gate[data-gate='learn'] canvas\").dataset.rows).length")
    assert every == 16 and "show the 12" in learn.locator("button.all").inner_text()
    learn.locator("button.all").click()
    # hovering a cell reads out its unit, word and value; words label the columns (drawn on the canvas)
    box = canvas.bounding_box()
    cell = page.evaluate("JSON.parse(document.querySelector(\".gate[data-gate='learn'] canvas\").dataset.cell)")
    scale_x = box["width"] / page.evaluate("document.querySelector(\".gate[data-gate='learn'] canvas\").width")
    page.mouse.move(box["x"] + (cell["left"] + cell["cw"] * 1.5) * scale_x, box["y"] + cell["ch"] * 0.5 * scale_x)
    readout = learn.locator(".readout").inner_text()
    first_unit = page.evaluate("JSON.parse(document.querySelector(\".gate[data-gate='learn'] canvas\").dataset.rows)[0]")
    assert readout.startswith(f"unit {first_unit} · word 2 “gorgeous” · "), readout
    float(readout.rsplit("· ", 1)[1])
    learn.screenshot(path=str(ARTIFACTS / "gate-map.png"))


def test_page_shows_errors(browser_page):
    page, url = browser_page
    page.goto(url + "/")
    page.fill("#text", "far too long . " * 500)  # over max_explain_chars: rated whole, explained in part
    page.click("#go")
    page.wait_for_selector("#explained", timeout=60_000)
    assert "7,500 characters" in page.inner_text("#explained") and "first 4,99" in page.inner_text("#explained")
    assert page.inner_text("#error") == ""
    page.fill("#text", "これは素晴らしい映画です")
    page.click("#go")
    page.wait_for_selector("#warning", timeout=30_000)
    assert "mostly a guess" in page.inner_text("#warning")
    page.fill("#text", "   ")
    page.click("#go")
    page.wait_for_function("document.getElementById('error').textContent.includes('first')", timeout=10_000)
    assert page.locator("#stars").count() == 0


def test_an_explanation_page_survives_script_like_text(browser_page, tiny_model, tmp_path):
    from support import run_cli
    page, _ = browser_page
    text = "good <!--<script> film </script> and --> bad & <b>bold</b>"
    out = tmp_path / "why.html"
    proc = run_cli("explain", "--model", tiny_model, text, "--html", out)
    assert proc.returncode == 0, proc.stderr
    script = out.read_text().split("<script>window.REVIEWLSTM_EXPLANATION = ", 1)[1].split("</script>", 1)[0]
    assert "<" not in script and ">" not in script  # nothing in the data can open or close a tag
    page.goto(out.as_uri())
    page.wait_for_selector("#stars", timeout=30_000)
    assert page.inner_text("#rating") in {"1", "2", "3", "4", "5"}
    assert page.locator("#heatmap span").count() > 5


def test_a_long_reviews_page_puts_the_rating_before_its_text(browser_page, tiny_model, tmp_path):
    """Above the rating only an excerpt of a long review; the whole text folded after the result."""
    from support import run_cli
    page, _ = browser_page
    text = " ".join(["a long and winding review that praises the acting and mourns the plot ."] * 60)
    out = tmp_path / "long.html"
    proc = run_cli("explain", "--model", tiny_model, text, "--html", out)
    assert proc.returncode == 0, proc.stderr
    page.goto(out.as_uri())
    page.wait_for_selector("#stars", timeout=30_000)
    assert len(page.inner_text("p.sub >> nth=0")) < 320
    stars_y = page.locator("#stars").bounding_box()["y"]
    assert page.locator("#whole-text").bounding_box()["y"] > stars_y  # the text after the rating
    assert page.locator("#whole-text p").text_content() == text  # folded, but all there
    assert f"the whole text ({len(text):,} characters)" in page.inner_text("#whole-text summary")


def test_a_model_rating_in_words_shows_its_words(browser_page, sst, tmp_path):
    """The bars and the verdict of a model trained on ratings in words carry the words."""
    from support import run_cli
    from reviewlstm.io.data import read_examples
    page, _ = browser_page
    names = {1: "bad", 2: "bad", 3: "so-so", 4: "good", 5: "good"}
    data = tmp_path / "words.csv"
    data.write_text("text,rating\n" + "".join(f"\"{e.text.replace(chr(34), '')}\",{names[e.rating]}\n"
                                              for e in list(read_examples(sst / "train.txt"))[:80]))
    out = tmp_path / "m"
    assert run_cli("train", "--train", data, "--out", out, "--epochs", 1, "--hidden", 4, "--embeddings", "random",
                   "--ratings", "bad,so-so,good", "--no-progress").returncode == 0
    html = tmp_path / "why.html"
    assert run_cli("explain", "--model", out, "a fine film", "--html", html).returncode == 0
    page.goto(html.as_uri())
    page.wait_for_selector("#stars", timeout=30_000)
    assert [t.strip() for t in page.locator(".bar > span:first-child").all_inner_texts()] == ["bad", "so-so", "good"]
