"""The browse page in a real browser: Playwright driving Debian's headless Chromium.

Needs the ``chromium`` package (``/usr/bin/chromium``) and the ``playwright`` pip
package; Playwright's own browser download is not used. Skipped, with the reason,
when either is missing. Set ``MDSIM_SCREENSHOT=path.png`` to save the page.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
        "--autoplay-policy=no-user-gesture-required"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,  # about a minute: TensorFlow, a tiny model, Chromium
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (pip install playwright)")

from conftest import chirp, clicks, sine, write_wav  # noqa: E402

DIMS = ("genre", "mood", "tempo", "key")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Six generated tracks embedded by a tiny untrained model, catalogued with labels."""
    import mdsim
    from mdsim.model import ModelConfig, build_model, save_model
    from mdsim.search import Catalog

    tmp = tmp_path_factory.mktemp("site")
    model_path = tmp / "tiny.keras"
    save_model(build_model(ModelConfig(dimensions=DIMS, embedding_size=32, width=0.25)), model_path)
    model = mdsim.load_model(model_path)
    root = tmp / "music"
    signals = [clicks(bpm=90 + 15 * i, seconds=6.0) + 0.3 * sine(220 * (1 + i / 5), seconds=6.0) for i in range(5)]
    signals.append(chirp(seconds=6.0))
    paths = [write_wav(root / f"t{i}.wav", y) for i, y in enumerate(signals)]
    embs = model.embed(paths)
    ids = [p.stem for p in paths]
    cat = Catalog(ids, np.stack([e.vectors for e in embs]), dimensions=DIMS,
                  labels={t: {"mood": ["sad" if i % 2 else "happy"], "tempo": 90.0 + 15 * i, "key": i}
                          for i, t in enumerate(ids)},
                  groups={t: f"a{i // 2}" for i, t in enumerate(ids)}, sources=dict(zip(ids, map(str, paths))),
                  metadata={"model": str(model_path), "model_sha256": model.fingerprint})
    return cat, root, model, paths


@pytest.fixture(scope="module")
def server(site):
    """uvicorn on 127.0.0.1, a free port, in a thread of this process."""
    import uvicorn

    from mdsim.serve.app import create_app

    cat, root, model, _ = site
    config = uvicorn.Config(create_app(cat, audio_root=root, model=model), host="127.0.0.1", port=0,
                            log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):  # at most 10 s
        if srv.started:
            break
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 800})
        pg.set_default_timeout(15_000)
        pg.goto(server + "/")
        pg.wait_for_selector("body[data-ready='1']")
        yield pg
        browser.close()


@pytest.fixture(autouse=True)
def no_filters(request):
    """Each test starts with the filters unset and a track of the library as the query, whatever
    the test before it left (the page is shared by the module; one failure must not fail the
    tests after it)."""
    if "page" in request.fixturenames:
        request.getfixturevalue("page").evaluate("""() => {
            for (const name of FILTERS) { const el = document.getElementById('f-' + name);
                if (el.type === 'checkbox') el.checked = false; else el.value = ''; }
            state.upload = null; state.query = state.query || 't0'; }""")


def set_weights(page, weights: dict):
    before = int(page.evaluate("document.body.dataset.searches || 0"))
    page.evaluate("""(w) => { for (const [d, v] of Object.entries(w)) {
        const el = document.getElementById('w-' + d); el.value = String(v);
        el.dispatchEvent(new Event('input')); } }""", weights)
    page.wait_for_function(f"Number(document.body.dataset.searches || 0) > {before}")


def results(page) -> list:
    return page.eval_on_selector_all("#results li", "els => els.map(e => e.dataset.track)")


def test_map_renders_every_track(page, site):
    assert page.get_attribute("#map", "data-points") == str(len(site[0]))
    assert page.evaluate("state.xy.every(p => Array.isArray(p) && p.length === 2)")


def test_click_plays_audio_and_runs_a_query(page, site):
    xy = page.evaluate("toCanvas(state.xy[2])")
    box = page.locator("#map").bounding_box()
    scale = box["width"] / 640
    page.mouse.click(box["x"] + xy[0] * scale, box["y"] + xy[1] * scale)
    page.wait_for_function("document.getElementById('player').dataset.track !== undefined")
    track = page.evaluate("document.getElementById('player').dataset.track")
    assert track in site[0]
    page.wait_for_function("!document.getElementById('player').paused "
                           "&& document.getElementById('player').currentTime > 0.3")
    page.wait_for_function("document.querySelectorAll('#results li').length > 0")
    assert track not in results(page)  # the query itself is left out


def test_sliders_steer_the_results_like_the_library(page, site):
    cat = site[0]
    page.evaluate("state.query = 't0'; state.upload = null; search()")
    for weights in ({"genre": 0, "mood": 1, "tempo": 0, "key": 0}, {"genre": 0, "mood": 0, "tempo": 1, "key": 0},
                    {"genre": 1, "mood": 0.5, "tempo": 0, "key": 0.25}):
        set_weights(page, weights)
        want = [h.track_id for h in cat.search("t0", weights=weights, k=10)]
        page.wait_for_function(f"Array.from(document.querySelectorAll('#results li')).map(e => e.dataset.track)"
                               f".join() === {','.join(want)!r}")
        scores = page.eval_on_selector_all("#results li", "els => els.map(e => Number(e.dataset.score))")
        assert scores == sorted(scores, reverse=True)


def test_upload_query_finds_the_uploaded_track(page, site):
    _, _, _, paths = site
    set_weights(page, {"genre": 1, "mood": 1, "tempo": 1, "key": 1})
    before = int(page.evaluate("document.body.dataset.searches || 0"))
    page.set_input_files("#upload", str(paths[4]))
    page.wait_for_function(f"Number(document.body.dataset.searches || 0) > {before}")  # the upload's own
    assert page.evaluate("state.upload && state.upload.name") == "t4.wav"
    assert results(page)[0] == "t4"
    top = float(page.get_attribute("#results li", "data-score"))
    assert top == pytest.approx(1.0, abs=1e-4)
    if os.environ.get("MDSIM_SCREENSHOT"):
        page.select_option("#colour", "mood")
        page.screenshot(path=os.environ["MDSIM_SCREENSHOT"])
        page.select_option("#colour", "genre")


def test_filter_controls_give_the_library_results(page, site):
    from mdsim.search import Filters

    cat = site[0]
    set_weights(page, {"genre": 1, "mood": 1, "tempo": 1, "key": 1})
    page.evaluate("state.query = 't0'; state.upload = null; search()")

    def shows(want):
        page.wait_for_function(f"Array.from(document.querySelectorAll('#results li')).map(e => e.dataset.track)"
                               f".join() === {','.join(want)!r}")

    page.fill("#f-tempo_tolerance", "20")
    before = int(page.evaluate("document.body.dataset.searches || 0"))
    page.fill("#f-max_per_group", "1")
    page.locator("#f-max_per_group").dispatch_event("change")
    page.wait_for_function(f"Number(document.body.dataset.searches || 0) > {before}")
    shows([h.track_id for h in cat.search("t0", k=10, filters=Filters(max_per_group=1, tempo_tolerance=20))])
    page.check("#f-harmonic")
    # By hand: of C..F major only F major (t5) mixes with C major (t0), and its 165 BPM is
    # within 20 % of double 90.
    assert [h.track_id for h in cat.search("t0", k=10, filters=Filters(harmonic=True, tempo_tolerance=20))] == ["t5"]
    shows(["t5"])
    page.fill("#f-tempo_tolerance", "")
    page.fill("#f-max_per_group", "")
    page.uncheck("#f-harmonic")


def test_each_result_shows_its_labels_and_what_each_dimension_adds(page, site):
    cat = site[0]
    set_weights(page, {"genre": 0, "mood": 1, "tempo": 0.5, "key": 0.25})
    page.evaluate("state.query = 't0'; state.upload = null; search()")
    want = cat.search("t0", weights={"mood": 1, "tempo": 0.5, "key": 0.25}, k=10)
    page.wait_for_function(f"Array.from(document.querySelectorAll('#results li')).map(e => e.dataset.track)"
                           f".join() === {','.join(h.track_id for h in want)!r}")
    shown = page.eval_on_selector_all("#results li", """els => els.map(e => ({
        labels: e.querySelector('.labels').textContent,
        parts: Object.fromEntries(Array.from(e.querySelectorAll('.bar')).map(b => [b.dataset.dim, Number(b.dataset.part)])),
        widths: Array.from(e.querySelectorAll('.bar .track span')).map(s => s.style.width)}))""")
    w = dict(zip(cat.dimensions, cat.weights(weights={"mood": 1, "tempo": 0.5, "key": 0.25})))
    for h, s in zip(want, shown):
        assert f"{round(h.labels['tempo'])} BPM" in s["labels"] and h.labels["mood"][0] in s["labels"]
        assert h.to_dict()["key_name"] in s["labels"]
        assert list(s["parts"]) == list(cat.dimensions)
        assert s["parts"] == pytest.approx({d: w[d] * h.scores[d] for d in cat.dimensions}, abs=1e-5)
        assert sum(s["parts"].values()) == pytest.approx(h.score, abs=1e-5)
        assert s["parts"]["genre"] == 0 and s["widths"][0] == "0%"


def test_results_are_marked_on_the_map_and_any_can_become_the_query(page, site):
    set_weights(page, {"genre": 1, "mood": 1, "tempo": 1, "key": 1})
    page.evaluate("state.query = 't0'; state.upload = null; search()")
    page.wait_for_function("document.getElementById('map').dataset.marked === "
                           "String(document.querySelectorAll('#results li').length)")
    assert page.evaluate("state.results.join()") == ",".join(results(page))
    second = results(page)[1]
    before = int(page.evaluate("document.body.dataset.searches || 0"))
    page.click(f"#results li[data-track='{second}'] button.use")
    page.wait_for_function(f"Number(document.body.dataset.searches || 0) > {before}")
    assert page.text_content("#query") == second and second not in results(page)
    assert results(page) == [h.track_id for h in site[0].search(second, k=10)]


def test_the_upload_lies_on_the_map_where_its_track_is_and_plays(page, site):
    _, _, _, paths = site
    set_weights(page, {"genre": 1, "mood": 1, "tempo": 1, "key": 1})
    before = int(page.evaluate("document.body.dataset.searches || 0"))
    page.set_input_files("#upload", str(paths[3]))
    page.wait_for_function(f"Number(document.body.dataset.searches || 0) > {before}")
    upload, t3 = page.evaluate("[state.uploadXY, state.xy[state.tracks.findIndex(t => t.track_id === 't3')]]")
    assert upload == pytest.approx(t3, abs=1e-3)  # the same audio: the same place
    xy = page.evaluate("toCanvas(state.uploadXY)")
    box = page.locator("#map").bounding_box()
    scale = box["width"] / 640
    page.mouse.click(box["x"] + xy[0] * scale, box["y"] + xy[1] * scale)
    page.wait_for_function("document.getElementById('player').dataset.track === '(upload)' "
                           "&& document.getElementById('player').currentTime > 0.3")
    assert page.text_content("#query") == "t3.wav"


def test_a_link_reproduces_the_search(page, server, site):
    from urllib.parse import parse_qs, urlsplit

    from mdsim.search import Filters

    cat = site[0]
    page.evaluate("state.query = 't1'; state.upload = null; search()")
    set_weights(page, {"genre": 0, "mood": 1, "tempo": 0.5, "key": 0})
    page.fill("#f-max_per_group", "1")
    page.select_option("#colour", "mood")
    page.uncheck("#mapByWeights")
    page.locator("#f-max_per_group").dispatch_event("change")
    page.wait_for_function("location.search.includes('max_per_group=1') && location.search.includes('map=fixed')")
    link = page.url
    assert parse_qs(urlsplit(link).query)["dims"] == ["genre=0,mood=1,tempo=0.5,key=0"]
    want = [h.track_id for h in cat.search("t1", weights={"mood": 1, "tempo": 0.5}, k=10, filters=Filters(max_per_group=1))]
    other = page.context.browser.new_page()
    try:
        other.goto(link)
        other.wait_for_selector("body[data-ready='1']")
        assert results(other) == want and other.text_content("#query") == "t1"
        assert other.input_value("#colour") == "mood" and not other.is_checked("#mapByWeights")
        assert other.input_value("#w-tempo") == "0.5" and other.input_value("#f-max_per_group") == "1"
    finally:
        other.close()
    page.fill("#f-max_per_group", "")
    page.check("#mapByWeights")
    page.select_option("#colour", "genre")


def test_a_late_answer_never_replaces_a_newer_search(page, site):
    # Two searches in flight whose answers come back in the other order (an upload being
    # embedded while a slider moves, a busy server): the page shows the newer one's results.
    set_weights(page, {"genre": 1, "mood": 1, "tempo": 1, "key": 1})
    page.evaluate("""() => { window.plainFetch = window.fetch;
        window.fetch = async (url, options) => {
            if (String(url).includes('track=t1')) await new Promise(done => setTimeout(done, 1500));
            return window.plainFetch(url, options); }; }""")
    try:
        before = int(page.evaluate("document.body.dataset.searches || 0"))
        page.evaluate("state.query = 't1'; search(); state.query = 't2'; search()")
        page.wait_for_function(f"Number(document.body.dataset.searches || 0) > {before}")
        page.wait_for_timeout(2500)  # t1's answer has arrived by now
        assert results(page) == [h.track_id for h in site[0].search("t2", k=10)]
        assert int(page.evaluate("document.body.dataset.searches")) == before + 1
    finally:
        page.evaluate("window.fetch = window.plainFetch")


def legend(page) -> list:
    return page.eval_on_selector_all("#legend .entry", "els => els.map(e => e.textContent)")


def test_colour_legend_scale_and_categories(page):
    page.select_option("#colour", "tempo")  # continuous: a scale from the slowest to the fastest
    assert page.text_content("#legend").startswith("90 BPM") and "165 BPM" in page.text_content("#legend")
    assert page.locator("#legend .scale").count() == 1 and legend(page) == []
    page.select_option("#colour", "mood")
    assert legend(page) == ["happy (3)", "sad (3)"] and page.locator("#legend .scale").count() == 0
    page.select_option("#colour", "genre")
    assert legend(page) == ["(none) (6)"]
    # Many categories: the commonest nine keep a colour, the rest are one "others" entry.
    rows = page.evaluate("""() => { const saved = state.tracks;
        state.tracks = Array.from({length: 30}, (_, i) => ({track_id: 'x' + i, labels: {mood: [i < 5 ? 'calm' : 'm' + i]}}));
        const c = colouring('mood'); state.tracks = saved;
        return [c.rows.map(r => r[0] + ' ' + r[2]), new Set(c.colours).size]; }""")
    assert rows[0][0] == "calm 5" and rows[0][-1] == "17 others 17" and len(rows[0]) == 10 and rows[1] == 10


def test_map_keeps_its_layout_unless_its_projection_changes_and_old_tooltips_go(page, site):
    page.evaluate("state.query = 't0'; state.upload = null; search()")
    set_weights(page, {"genre": 1, "mood": 1, "tempo": 1, "key": 1})
    page.uncheck("#mapByWeights")
    page.wait_for_function("state.mapDims === ''")
    loads = page.get_attribute("#map", "data-loads")
    set_weights(page, {"genre": 0, "mood": 1, "tempo": 0.5, "key": 0})  # searched again, the map stays
    assert page.get_attribute("#map", "data-loads") == loads
    page.check("#mapByWeights")
    page.wait_for_function(f"document.getElementById('map').dataset.loads !== {loads!r}")
    xy = page.evaluate("toCanvas(state.xy[1])")
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + xy[0] * box["width"] / 640, box["y"] + xy[1] * box["width"] / 640)
    assert page.is_visible("#tooltip") and page.text_content("#tooltip").startswith("t1")
    set_weights(page, {"genre": 1, "mood": 0, "tempo": 1, "key": 1})  # a new layout: the tooltip was for the old
    page.wait_for_function("state.mapDims === 'genre=1,mood=0,tempo=1,key=1'")
    assert not page.is_visible("#tooltip")
    set_weights(page, {"genre": 1, "mood": 1, "tempo": 1, "key": 1})


def test_keyboard_moves_through_results_and_plays_and_pauses(page, site):
    set_weights(page, {"genre": 1, "mood": 1, "tempo": 1, "key": 1})
    page.evaluate("state.query = 't0'; state.upload = null; search()")
    page.wait_for_function("document.querySelectorAll('#results li').length > 1")
    shown = results(page)
    page.focus("#map")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.dataset.track") == shown[1] == page.evaluate("state.focus")
    page.keyboard.press("ArrowUp")
    assert page.evaluate("document.activeElement.dataset.track") == shown[0]
    page.keyboard.press(" ")  # plays the focused result; its button shows the pause sign
    page.wait_for_function(f"document.body.dataset.playing === {shown[0]!r}")
    assert page.text_content(f"#results li[data-track='{shown[0]}'] button.play") == "❚❚"
    assert page.text_content(f"#results li[data-track='{shown[1]}'] button.play") == "▶"
    page.keyboard.press(" ")  # and pauses it
    page.wait_for_function("document.body.dataset.playing === '' && document.getElementById('player').paused")
    assert page.text_content(f"#results li[data-track='{shown[0]}'] button.play") == "▶"
    page.focus("#map")
    page.keyboard.press(" ")  # on the map, space resumes the player
    page.wait_for_function(f"document.body.dataset.playing === {shown[0]!r}")
    page.keyboard.press(" ")
    page.wait_for_function("document.getElementById('player').paused")
    page.focus(f"#results li[data-track='{shown[1]}']")
    page.keyboard.press("Enter")  # makes it the query
    page.wait_for_function(f"document.getElementById('query').textContent === {shown[1]!r}")


@pytest.mark.parametrize("size", [(800, 600), (390, 844)])
def test_usable_in_a_narrow_window_and_on_a_phone(page, server, size):
    width, height = size
    small = page.context.browser.new_page(viewport={"width": width, "height": height})
    try:
        small.goto(server + "/?track=t0")
        small.wait_for_selector("body[data-ready='1']")
        assert small.evaluate("document.documentElement.scrollWidth") <= width  # nothing off to the side
        for selector in ("#map", "#player", "#sliders", "#results li", "#legend"):
            box = small.locator(selector).first.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, selector
        assert small.locator("#map").bounding_box()["width"] >= min(width - 40, 300)
        if os.environ.get("MDSIM_SCREENSHOT"):
            small.screenshot(path=os.environ["MDSIM_SCREENSHOT"].replace(".png", f"_{width}.png"), full_page=True)
    finally:
        small.close()
