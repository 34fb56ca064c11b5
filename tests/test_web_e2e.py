"""The page in a real headless Chromium (Debian's package), driven by Playwright.

A uvicorn server runs in a thread on a free loopback port; the browser loads
the page, gets an error for a non-image, uploads an image, waits for the
result, drags the comparison, downloads the PNG and checks its size, and saves
a screenshot (to the test's tmp folder; also to $KAKUDAI_WEB_SCREENSHOT if set,
which is how docs/web.png is made).

Skipped only where Chromium is absent (.ci/run installs it). Playwright never
downloads a browser here: it launches the system one.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in (os.environ.get("KAKUDAI_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p and Path(p).exists()), None)
# The network is closed: without these Chromium waits on services it cannot reach.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
TIMEOUT_MS = 60_000
# the machine may be busy with a training run
INFO_HAS = "(text) => document.getElementById('result-info').textContent.includes(text)"

if CHROMIUM is None:
    pytest.skip("Chromium not found (/usr/bin/chromium): apt-get install chromium to run the browser test",
                allow_module_level=True)


@pytest.fixture(scope="module")
def server_url():
    pytest.importorskip("uvicorn", reason="the web extra is not installed: pip install '.[web]'")
    from kakudai.web.server import WebConfig, bind, create_app
    import uvicorn

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = create_app(WebConfig(allowed_hosts=("127.0.0.1", "localhost")))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)
    sock.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Chromium is here but Playwright is not: pip install '.[test]'")
    with sync_playwright() as p:
        # Playwright gives every launch a fresh temporary profile (--user-data-dir).
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        yield b
        b.close()


def sample_image(path: Path) -> tuple[int, int]:
    """The repository's sample photo if present, else a drawn one."""
    src = REPO / "examples" / "sample.png"
    if src.exists():
        shutil.copyfile(src, path)
    else:
        im = Image.new("RGB", (120, 90), (235, 232, 220))
        d = ImageDraw.Draw(im)
        d.ellipse((10, 10, 60, 60), fill=(180, 50, 30))
        d.rectangle((70, 20, 110, 80), outline=(20, 60, 140), width=3)
        d.text((12, 68), "kakudai", fill=(0, 0, 0))
        im.save(path)
    with Image.open(path) as im:
        return im.size


@pytest.mark.slow
def test_page_upload_compare_download(server_url, browser, tmp_path):
    img_path = tmp_path / "photo.png"
    w, h = sample_image(img_path)
    bad_path = tmp_path / "notes.png"
    bad_path.write_text("this is text, not an image\n" * 20)

    context = browser.new_context(viewport={"width": 1180, "height": 980}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    console_errors: list[str] = []
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    page.goto(server_url + "/")
    page.wait_for_selector("#model option[value=default]", state="attached")
    page.evaluate("""() => { window.__statuses = [];
        new MutationObserver(() => window.__statuses.push(document.getElementById('status').textContent))
          .observe(document.getElementById('status'), {childList: true, characterData: true, subtree: true}); }""")

    # A file that is not an image: the server's error is shown in the page.
    page.set_input_files("#file", str(bad_path))
    page.click("#go")
    page.wait_for_selector("#error:not([hidden])")
    assert "not an image" in page.inner_text("#error")

    # A real image at x2 with the default model.
    page.set_input_files("#file", str(img_path))
    page.fill("#scale", "2")
    page.click("#go")
    page.wait_for_selector("#result:not([hidden])")
    assert page.is_hidden("#error")
    assert any(s.startswith("Uploading") for s in page.evaluate("window.__statuses")), \
        "no progress was shown"
    info = page.inner_text("#result-info")
    assert f"{w}×{h} → {2 * w}×{2 * h}" in info, info

    # Before and after are shown at the same display size.
    before, after = page.locator("#before").bounding_box(), page.locator("#after").bounding_box()
    assert before == after and after["width"] > w
    # Dragging over the image moves the split.
    box = page.locator("#compare").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)
    assert abs(float(page.input_value("#slider")) - 25) < 2
    assert "75" in page.eval_on_selector("#before", "e => e.style.clipPath")
    page.locator("#compare").hover(position={"x": box["width"] * 0.6, "y": box["height"] / 2})
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.62, box["y"] + box["height"] / 2, steps=3)
    page.mouse.up()
    assert abs(float(page.input_value("#slider")) - 62) < 2

    with page.expect_download() as dl:
        page.click("#download")
    download = dl.value
    assert download.suggested_filename == "photo_x2.png"
    saved = tmp_path / "downloaded.png"
    download.save_as(saved)
    with Image.open(saved) as out:
        assert out.format == "PNG" and out.size == (2 * w, 2 * h)

    # A target size instead of a scale.
    assert page.is_enabled("#mode-size")
    page.check("#mode-size")
    page.fill("#width", str(w * 5 // 2))
    page.click("#go")
    page.wait_for_function(INFO_HAS, arg=f"→ {w * 5 // 2}×")
    page.check("#mode-scale")
    page.fill("#scale", "2")
    page.click("#go")
    page.wait_for_function(INFO_HAS, arg=f"→ {2 * w}×")
    page.mouse.click(box["x"] + box["width"] * 0.62, box["y"] + box["height"] / 2)

    shot = tmp_path / "web.png"
    page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as im:
        assert im.size[0] >= 1000
    if os.environ.get("KAKUDAI_WEB_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["KAKUDAI_WEB_SCREENSHOT"])
    assert not console_errors, console_errors
    context.close()


def test_title_word_shown_only_where_a_font_has_it(server_url, browser):
    """The title's Japanese word (拡大) is hidden where no installed font has its glyphs,
    instead of rendering as empty boxes; "kakudai" is always there."""
    import subprocess

    fc_list = shutil.which("fc-list")
    if fc_list is None:
        pytest.skip("fc-list not found: cannot tell whether a font has the glyphs")
    fonts = subprocess.run([fc_list, ":charset=62e1 5927", "family"], capture_output=True, text=True, check=True)
    has_glyphs = bool(fonts.stdout.strip())
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    console_errors: list[str] = []
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    page.goto(server_url + "/")
    page.wait_for_selector("#model option[value=default]", state="attached")  # app.js has run
    assert page.inner_text("h1").split()[0] == "kakudai"
    assert page.get_attribute("h1 [lang=ja]", "lang") == "ja"
    assert page.is_visible("h1 [lang=ja]") == has_glyphs, fonts.stdout
    assert not console_errors, console_errors
    page.close()
