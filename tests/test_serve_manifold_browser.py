"""The 3-D manifold page in a real browser (Debian's Chromium through Playwright): it draws every
note, rotates on drag, zooms on the wheel, recolours, and plays the clicked note.
Skipped, with the reason, without /usr/bin/chromium or playwright."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.test_serve_browser import ARGS, CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (pip install playwright)")

from tests.conftest import sine, write_wav  # noqa: E402


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    import uvicorn

    from mdsim.serve.manifold import create_manifold_app

    root = tmp_path_factory.mktemp("notes")
    ids = [f"n{i}" for i in range(12)]
    for i, t in enumerate(ids):
        write_wav(root / f"{t}.wav", sine(220.0 * 2 ** (i / 12), seconds=1.0))
    angle = [0.5 * i for i in range(12)]
    import math

    points = {"neighbourhood": "pitch", "track_ids": ids,
              "xyz": [[math.cos(a), math.sin(a), 0.2 * i] for i, a in enumerate(angle)],
              "instrument": ["flute" if i % 2 else "piano" for i in range(12)], "pitch": list(range(57, 69)),
              "pitch_name": [f"p{i}" for i in range(12)], "split": ["train"] * 9 + ["held_out"] * 3,
              "source_path": [str(root / f"{t}.wav") for t in ids]}
    srv = uvicorn.Server(uvicorn.Config(create_manifold_app(points, audio_root=root), host="127.0.0.1", port=0,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    port = srv.servers[0].sockets[0].getsockname()[1]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 800})
        pg.set_default_timeout(15_000)
        pg.goto(f"http://127.0.0.1:{port}/")
        pg.wait_for_selector("body[data-ready='1']")
        yield pg
        browser.close()
    srv.should_exit = True
    thread.join(timeout=10)


def test_draws_every_note_and_filters_held_out(page):
    assert page.get_attribute("#map", "data-points") == "12"
    page.check("#heldOnly")
    assert page.get_attribute("#map", "data-points") == "3"
    page.uncheck("#heldOnly")


def test_drag_rotates_and_wheel_zooms(page):
    box = page.locator("#map").bounding_box()
    before = page.evaluate("screenOf('n5')")
    page.mouse.move(box["x"] + 100, box["y"] + 100)
    page.mouse.down()
    page.mouse.move(box["x"] + 220, box["y"] + 140, steps=5)
    page.mouse.up()
    after = page.evaluate("screenOf('n5')")
    assert abs(after[0] - before[0]) + abs(after[1] - before[1]) > 5
    centre = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
    page.mouse.move(*centre)
    spread = page.evaluate("Math.abs(screenOf('n11')[0] - screenOf('n0')[0]) + Math.abs(screenOf('n11')[1] - screenOf('n0')[1])")
    page.mouse.wheel(0, -400)
    zoomed = page.evaluate("Math.abs(screenOf('n11')[0] - screenOf('n0')[0]) + Math.abs(screenOf('n11')[1] - screenOf('n0')[1])")
    assert zoomed > 1.2 * spread
    page.click("#reset")


def test_click_plays_the_note(page):
    page.select_option("#colour", "pitch")
    assert "MIDI 57" in page.inner_text("#legend")
    x, y = page.evaluate("screenOf('n7')")
    box = page.locator("#map").bounding_box()
    scale = box["width"] / 640
    page.mouse.click(box["x"] + x * scale, box["y"] + y * scale)
    page.wait_for_function("document.getElementById('player').dataset.track === 'n7'")
    page.wait_for_function("!document.getElementById('player').paused "
                           "&& document.getElementById('player').currentTime > 0.2")
    assert "n7" in page.inner_text("#playing")
    if os.environ.get("MDSIM_SCREENSHOT"):
        page.screenshot(path=os.environ["MDSIM_SCREENSHOT"])


def test_wheel_zooms_towards_the_cursor_and_shift_drag_pans(page):
    box = page.locator("#map").bounding_box()
    scale = box["width"] / 640
    x, y = page.evaluate("screenOf('n3')")
    page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
    spread = page.evaluate("Math.hypot(screenOf('n11')[0] - screenOf('n0')[0], screenOf('n11')[1] - screenOf('n0')[1])")
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"Math.hypot(screenOf('n11')[0] - screenOf('n0')[0], screenOf('n11')[1] - screenOf('n0')[1]) > {1.2 * spread}")
    assert page.evaluate("screenOf('n3')") == pytest.approx([x, y], abs=1.5)  # the note under the cursor stays
    before = page.evaluate("['n0', 'n5', 'n11'].map(screenOf)")
    page.keyboard.down("Shift")
    page.mouse.move(box["x"] + 200, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 260, box["y"] + 230, steps=4)
    page.mouse.up()
    page.keyboard.up("Shift")
    after = page.evaluate("['n0', 'n5', 'n11'].map(screenOf)")
    for b, a in zip(before, after):  # every note moved by the drag, none rotated
        assert [a[0] - b[0], a[1] - b[1]] == pytest.approx([60 / scale, 30 / scale], abs=1.0)
    page.click("#reset")
    assert page.evaluate("[view.zoom, view.panX, view.panY]") == [1, 0, 0]


def test_clicked_note_is_ringed_and_the_legend_counts(page):
    page.select_option("#colour", "instrument")
    entries = page.eval_on_selector_all("#legend .entry", "els => els.map(e => e.textContent)")
    assert entries == ["flute (6)", "piano (6)"]
    page.check("#heldOnly")  # counts follow the notes shown
    assert page.eval_on_selector_all("#legend .entry", "els => els.map(e => e.textContent)") == ["flute (2)", "piano (1)"]
    page.uncheck("#heldOnly")
    page.select_option("#colour", "pitch")
    assert page.locator("#legend .scale").count() == 1
    assert page.inner_text("#legend").startswith("MIDI 57 p0") and "MIDI 68 p11" in page.inner_text("#legend")
    x, y = page.evaluate("screenOf('n4')")
    box = page.locator("#map").bounding_box()
    scale = box["width"] / 640
    page.mouse.click(box["x"] + x * scale, box["y"] + y * scale)
    page.wait_for_function("document.getElementById('map').dataset.selected === 'n4'")
    # the ring is drawn: black pixels just outside the note's dot
    dark = page.evaluate(f"""(() => {{ const d = canvas.getContext('2d').getImageData({x} - 9, {y} - 9, 18, 18).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 200 && d[i] + d[i + 1] + d[i + 2] < 120) n++;
        return n; }})()""")
    assert dark > 20
