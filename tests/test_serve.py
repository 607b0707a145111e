"""mdsim serve: the browse page's API and its audio endpoint, over HTTP (Starlette's
test client, in process), and in a real browser (marker ``browser``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("httpx", reason="the HTTP tests need httpx (pip install httpx)")

import warnings  # noqa: E402

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from mdsim.labels import DIMENSIONS  # noqa: E402
from mdsim.search import Catalog  # noqa: E402
from mdsim.serve.app import Projection, create_app, projection  # noqa: E402

ATOL = 1e-5


@pytest.fixture
def site(tmp_path, rng, audio_dir):
    """A catalog of 30 tracks: 8 real recordings under the audio root, one whose file is
    outside it, one symlink pointing out of it, the rest without audio."""
    root = tmp_path / "music"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "secret.ogg"
    shutil.copy(audio_dir / "robin.ogg", outside)
    sources = {}
    for i, name in enumerate(sorted(p.stem for p in audio_dir.glob("*.ogg"))):
        dest = root / ("sub" if i % 2 else "") / f"{name}.ogg"
        shutil.copy(audio_dir / f"{name}.ogg", dest)
        sources[name] = str(dest)
    os.symlink(outside, root / "link.ogg")
    sources["escape"] = str(outside)
    sources["link"] = str(root / "link.ogg")
    sources["relative"] = "sub/fishin.ogg"  # the second recording, copied into sub/
    ids = list(sources) + [f"x{i}" for i in range(30 - len(sources))]
    x = rng.standard_normal((len(ids), len(DIMENSIONS) * 4)).astype(np.float32)
    labels = {t: {"mood": ["sad" if i % 2 else "happy"], "tempo": 80.0 + 3 * i, "key": i % 24}
              for i, t in enumerate(ids)}
    groups = {t: f"g{i % 4}" for i, t in enumerate(ids)}
    cat = Catalog(ids, x, dimensions=DIMENSIONS, labels=labels, groups=groups, sources=sources)
    return cat, root, x


def local_client(app, host="127.0.0.1:8000"):
    """A test client whose requests name the served address as Host (the app refuses others)."""
    return TestClient(app, base_url=f"http://{host}")


@pytest.fixture
def client(site):
    cat, root, _ = site
    return local_client(create_app(cat, audio_root=root))


def test_page_and_static_files_are_package_data(client):
    r = client.get("/")
    assert r.status_code == 200 and "<canvas id=\"map\"" in r.text
    for name in ("app.js", "legend.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "http" not in client.get("/").text.replace("http-equiv", "")  # nothing from the internet


def test_catalog_and_map(client, site):
    cat = site[0]
    info = client.get("/api/catalog").json()
    assert info["dimensions"] == list(DIMENSIONS) and info["n_tracks"] == 30
    assert info["tracks"][0]["labels"]["mood"] == ["happy"] and "key_name" in info["tracks"][0]
    m = client.get("/api/map", params={"dims": "mood=1,tempo=0.5"}).json()
    xy = np.array(m["xy"])
    assert xy.shape == (30, 2) and np.abs(xy).max() == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(xy, projection(cat, cat.weights(weights={"mood": 1, "tempo": 0.5})), atol=1e-4)
    # the map of one dimension ignores the others: changing another subspace moves nothing
    only_mood = projection(cat, cat.weights(dims=["mood"]))
    moved = Catalog(cat.track_ids, np.where(np.arange(24) // 4 == 1, cat.vectors(), 7.0), dimensions=DIMENSIONS)
    np.testing.assert_allclose(np.abs(projection(moved, moved.weights(dims=["mood"]))), np.abs(only_mood),
                               atol=1e-4)
    # an outside vector (an upload) is placed on the same map: a catalog track's own vector lands on its point
    fitted = Projection(cat, cat.weights(weights={"mood": 1, "tempo": 0.5}))
    np.testing.assert_allclose([fitted.place(v) for v in cat.vectors()[:5]], xy[:5], atol=1e-4)


def test_search_endpoint_equals_the_library_and_moves_with_the_weights(client, site):
    cat = site[0]
    params = {"track": "brahms", "dims": "mood=1,tempo=0.25", "k": 5, "exclude_group": "1", "tempo": "80:150"}
    got = client.get("/api/search", params=params).json()["results"]
    from mdsim.search import Filters

    want = cat.search("brahms", weights={"mood": 1, "tempo": 0.25}, k=5,
                      filters=Filters(exclude_group=True, tempo_range=(80, 150)))
    assert [h["track_id"] for h in got] == [h.track_id for h in want]
    np.testing.assert_allclose([h["score"] for h in got], [h.score for h in want], atol=ATOL)
    w = cat.weights(weights={"mood": 1, "tempo": 0.25})
    for h in got:  # each dimension's part of the score: normalised weight x cosine, summing to it
        assert h["parts"] == pytest.approx({d: wk * h["scores"][d] for d, wk in zip(cat.dimensions, w)}, abs=ATOL)
        assert sum(h["parts"].values()) == pytest.approx(h["score"], abs=ATOL)
        assert h["parts"]["genre"] == 0
    mood_only = client.get("/api/search", params={"track": "brahms", "dims": "mood=1", "k": 3}).json()
    assert all(h["score"] == pytest.approx(h["scores"]["mood"], abs=ATOL) for h in mood_only["results"])
    bad = client.get("/api/search", params={"track": "brahms", "dims": "colour=1"})
    assert bad.status_code == 400 and "colour" in bad.json()["error"]
    assert client.get("/api/search").status_code == 400
    upload = client.post("/api/search", content=b"RIFF....")
    assert upload.status_code == 400 and "--model" in upload.json()["error"]


def test_new_filters_seeds_playlist_and_path_equal_the_library(client, site):
    from mdsim.search import Filters, continue_from, walk

    cat = site[0]
    params = {"track": ["brahms", "x5"], "dims": "mood=1,key=0.5", "k": 6, "max_per_group": 2,
              "dedupe": "0.3", "tempo_tolerance": "40", "harmonic": "1"}
    filters = Filters(max_per_group=2, dedupe=0.3, tempo_tolerance=40, harmonic=True)
    got = client.get("/api/search", params=params).json()
    want = cat.search(["brahms", "x5"], weights={"mood": 1, "key": 0.5}, k=6, filters=filters)
    assert got["query"] == ["brahms", "x5"] and want
    assert [h["track_id"] for h in got["results"]] == [h.track_id for h in want]
    got = client.get("/api/playlist", params={"seed": ["brahms", "x5"], "n": 7, "dims": "mood", "max_per_group": 3})
    want = continue_from(cat, ["brahms", "x5"], n=7, dims=["mood"], filters=Filters(max_per_group=3))
    assert got.status_code == 200 and got.json() == json.loads(json.dumps(want.to_dict()))
    got = client.get("/api/path", params={"from": "brahms", "to": "x9", "n": 5, "dims": "mood=1,tempo=1"})
    want = walk(cat, "brahms", "x9", n=5, weights={"mood": 1, "tempo": 1})
    assert got.status_code == 200 and got.json() == json.loads(json.dumps(want.to_dict()))
    assert len(got.json()["tracks"]) == 7


@pytest.mark.parametrize("url, params, words", [
    ("/api/playlist", {}, "seed=ID"),
    ("/api/playlist", {"seed": "brahms", "n": "0"}, "n must be from 1 to 200"),
    ("/api/playlist", {"seed": "brahms", "n": "201"}, "n must be from 1 to 200"),
    ("/api/playlist", {"seed": "brahms", "n": "abc"}, "n must be a whole number"),
    ("/api/playlist", {"seed": "nope"}, "no track 'nope'"),
    ("/api/playlist", {"seed": "brahms", "max_per_group": "0"}, "max_per_group"),
    ("/api/path", {"from": "brahms"}, "from=ID&to=ID"),
    ("/api/path", {"from": "brahms", "to": "brahms"}, "both 'brahms'"),
    ("/api/path", {"from": "brahms", "to": "x1", "n": "10000"}, "n must be from 1 to 200"),
    ("/api/search", {"track": "brahms", "dedupe": "5"}, "dedupe"),
    ("/api/search", {"track": "brahms", "tempo_tolerance": "fast"}, "tempo_tolerance must be a number"),
    ("/api/search", {"track": ["brahms", "nope"]}, "no track 'nope'"),
])
def test_playlist_and_path_refuse_bad_parameters(client, url, params, words):
    r = client.get(url, params=params)
    assert r.status_code == 400 and words in r.json()["error"], (r.status_code, r.text)


def test_openapi_describes_what_the_routes_accept(client):
    from mdsim.serve.app import MAX_PLAYLIST

    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and set(spec["paths"]) == {"/api/search", "/api/playlist", "/api/path"}
    valid = {"track": "brahms", "seed": "brahms", "from": "brahms", "to": "x9", "dims": "mood=1", "tempo": "60:200",
             "key": "A minor", "tempo_tolerance": "50", "dedupe": "0.99", "min_score": "-1", "k": "3", "n": "2",
             "max_per_group": "5"}
    for route, item in spec["paths"].items():
        names = [p["name"] for p in item["get"]["parameters"]]
        assert {p["name"] for p in item["get"]["parameters"] if p["required"]} <= set(valid)
        for name in names:  # each one alone (with the required ones) is accepted
            p = {n: valid[n] for n in names if n in valid and (n == name or any(
                q["name"] == n and q["required"] for q in item["get"]["parameters"]))}
            p.setdefault(name, "1")
            r = client.get(route, params=p)
            assert r.status_code == 200, (route, name, r.text)
        if "n" in names:
            n = next(p for p in item["get"]["parameters"] if p["name"] == "n")
            assert n["schema"]["maximum"] == MAX_PLAYLIST


def test_audio_is_served_whole_and_by_range(client, site):
    cat, root, _ = site
    data = Path(cat.info("brahms")["source_path"]).read_bytes()
    r = client.get("/audio/brahms")
    assert r.status_code == 200 and r.content == data and r.headers["content-type"] == "audio/ogg"
    assert r.headers.get("accept-ranges") == "bytes"
    r = client.get("/audio/brahms", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"
    r = client.get("/audio/brahms", headers={"Range": "bytes=-50"})
    assert r.status_code == 206 and r.content == data[-50:]
    r = client.get("/audio/brahms", headers={"Range": f"bytes={len(data) + 10}-"})
    assert r.status_code == 416
    assert client.get("/audio/relative").status_code == 200  # a relative path is read under the root


@pytest.mark.parametrize("url, status", [
    ("/audio/..%2F..%2Fsecret.ogg", 404),
    ("/audio/../secret.ogg", 404),
    ("/audio/%2E%2E/secret.ogg", 404),
    ("/audio//etc/passwd", 404),
    ("/audio/%2Fetc%2Fpasswd", 404),
    ("/audio/sub%2Fbrahms.ogg", 404),
    ("/audio/x3", 404),            # a track without audio
    ("/audio/escape", 403),        # the catalog points outside the root
    ("/audio/link", 403),          # a symlink in the root pointing out of it
])
def test_audio_refuses_everything_but_catalog_files_under_the_root(client, url, status):
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code)
    assert b"OggS" not in r.content


def test_serve_warns_off_localhost(monkeypatch):
    import uvicorn

    from mdsim import serve as serve_module

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    monkeypatch.setattr(serve_module, "create_app", lambda *a, **k: None, raising=False)
    monkeypatch.setattr("mdsim.serve.app.create_app", lambda *a, **k: None)
    with pytest.warns(UserWarning, match="anyone who can reach"):
        serve_module.serve("cat", audio_root=".", host="0.0.0.0", port=8123)
    assert calls[-1]["host"] == "0.0.0.0"


def test_several_audio_roots(site, tmp_path):
    cat, root, _ = site
    both = local_client(create_app(cat, audio_root=[root, tmp_path]))  # tmp_path holds secret.ogg
    assert both.get("/audio/escape").status_code == 200
    assert both.get("/audio/brahms").status_code == 200
    only = local_client(create_app(cat, audio_root=[root / "sub"]))
    assert only.get("/audio/brahms").status_code == 403 and only.get("/audio/fishin").status_code == 200


def test_bad_parameters_are_400_and_k_is_capped_at_the_catalog(client, site):
    n = len(site[0])
    for params, words in [({"k": "abc"}, "k must be a whole number"), ({"k": "0"}, "k must be 1 or more"),
                          ({"k": "1e23"}, "k must be a whole number"), ({"min_score": "abc"}, "min_score must be"),
                          ({"min_score": "2"}, "from -1 to 1"), ({"min_score": "nan"}, "from -1 to 1")]:
        r = client.get("/api/search", params={"track": "brahms", **params})
        assert r.status_code == 400 and words in r.json()["error"], (params, r.status_code, r.text)
    for k in (10**12, 10**23):
        r = client.get("/api/search", params={"track": "brahms", "k": str(k)})
        assert r.status_code == 200 and len(r.json()["results"]) == n - 1


def test_uploads_are_streamed_to_disk_with_the_limit_and_no_temporary_path_is_told(site, monkeypatch, tmp_path):
    import tempfile

    from starlette.requests import Request

    from mdsim.errors import AudioError
    from mdsim.serve import app as app_module

    class Unreadable:  # a model whose decoder fails, naming the file it was given
        fingerprint = None

        def embed(self, path):
            raise AudioError(f"{path}: cannot decode this file")

    async def whole_body(self):
        raise AssertionError("the upload was read into memory whole")

    monkeypatch.setattr(Request, "body", whole_body)
    monkeypatch.setattr(app_module, "MAX_UPLOAD", 10_000)
    (tmp_path / "t").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "t"))
    cat, root, _ = site
    client = local_client(create_app(cat, audio_root=root, model=Unreadable()))

    def chunks(n):  # no Content-Length: only counting while reading can stop it
        for _ in range(n):
            yield b"x" * 1000

    big = client.post("/api/search", content=chunks(50))
    assert big.status_code == 413 and "limited to" in big.json()["error"]
    declared = client.post("/api/search", content=b"x" * 20_000)
    assert declared.status_code == 413
    bad = client.post("/api/search", content=chunks(3), headers={"x-filename": "mine.ogg"})
    assert bad.status_code == 400, bad.text
    assert bad.json()["error"] == "the uploaded file: cannot decode this file"
    assert client.post("/api/search", content=b"").status_code == 400
    assert list((tmp_path / "t").iterdir()) == []  # every temporary file removed


def test_only_the_served_address_is_answered_and_no_cors(site):
    cat, root, _ = site
    app = create_app(cat, audio_root=root, host="127.0.0.1", port=8000)
    for host in ("127.0.0.1:8000", "localhost:8000", "LOCALHOST:8000"):
        assert local_client(app, host).get("/api/catalog").status_code == 200, host
    for host in ("evil.example:8000", "evil.example", "127.0.0.1:9999", "127.0.0.1.evil.example:8000"):
        r = local_client(app, host).get("/api/catalog")
        assert r.status_code == 400 and "Host" in r.json()["error"], host
    lan = create_app(cat, audio_root=root, host="192.168.1.5", port=8000)
    assert local_client(lan, "192.168.1.5:8000").get("/").status_code == 200
    every = create_app(cat, audio_root=root, host="0.0.0.0", port=8000)  # the page from another machine
    for host in ("192.168.1.5:8000", "10.0.0.7:8000", "[fe80::1]:8000", "localhost:8000"):
        assert local_client(every, host).get("/api/catalog").status_code == 200, host
    for host in ("evil.example:8000", "192.168.1.5.evil.example:8000", "192.168.1.5:9999"):
        assert local_client(every, host).get("/api/catalog").status_code == 400, host
    v6 = create_app(cat, audio_root=root, host="::1", port=8000)
    assert local_client(v6, "[::1]:8000").get("/api/catalog").status_code == 200
    r = local_client(app).get("/api/catalog", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200 and not any(h.lower().startswith("access-control-") for h in r.headers)
    pre = local_client(app).options("/api/search", headers={"Origin": "http://evil.example",
                                                            "Access-Control-Request-Method": "POST"})
    assert not any(h.lower().startswith("access-control-") for h in pre.headers)


def test_a_catalog_moved_with_its_audio_is_served_from_the_new_root(site, tmp_path):
    import h5py

    cat, root, x = site
    recordings = [t for t in cat.track_ids if t not in ("escape", "link", "relative")
                  and cat.info(t)["source_path"]]
    mine = Catalog(recordings, x[:len(recordings)], dimensions=DIMENSIONS,
                   sources={t: cat.info(t)["source_path"] for t in recordings})
    mine.save(tmp_path / "cat")
    with h5py.File(tmp_path / "cat" / "tracks.h5") as f:  # kept relative to the folder they were found in
        assert sorted(f["source_path"].asstr()[()]) == sorted(
            Path(mine.info(t)["source_path"]).relative_to(root).as_posix() for t in recordings)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "cat", elsewhere / "catalog")
    shutil.copytree(root, elsewhere / "audio", symlinks=True)
    shutil.rmtree(root)  # the audio is only where it was copied to
    moved = local_client(create_app(Catalog.load(elsewhere / "catalog"), audio_root=elsewhere / "audio"))
    for t in ("brahms", "fishin"):
        r = moved.get(f"/audio/{t}")
        assert r.status_code == 200 and r.content == next((elsewhere / "audio").rglob(f"{t}.ogg")).read_bytes()


def test_find_audio_reads_old_absolute_paths_under_a_new_root(tmp_path):
    from mdsim.search.catalog import find_audio

    new = tmp_path / "new"
    (new / "sub").mkdir(parents=True)
    (new / "sub" / "a.ogg").write_bytes(b"OggS")
    (new / "a.ogg").write_bytes(b"OggS")
    assert find_audio("/gone/music/sub/a.ogg", [new]) == new / "sub" / "a.ogg"  # the longest tail first
    assert find_audio("/gone/music/b.ogg", [new]) is None
    assert find_audio("sub/a.ogg", [tmp_path / "other", new]) == new / "sub" / "a.ogg"  # any root, in turn
    assert find_audio("", [new]) is None


@pytest.mark.slow  # TensorFlow, prep, a tiny model: about 20 s
def test_a_moved_catalog_finds_its_model_beside_it_and_refuses_another(small_corpus, tmp_path, capsys, monkeypatch):
    import uvicorn

    from mdsim.cli import main
    from mdsim.model import ModelConfig, build_model, save_model

    config = ModelConfig(dimensions=("genre", "mood", "tempo", "key"), embedding_size=32, width=0.25)
    work = tmp_path / "work"
    save_model(build_model(config), work / "tiny.keras")
    assert main(["prep", str(small_corpus), "--out", str(work / "store.h5"), "--workers", "1", "--quiet"]) == 0
    assert main(["index", str(work / "store.h5"), "--model", str(work / "tiny.keras"), "--out", str(work / "cat"),
                 "--quiet"]) == 0
    meta = json.loads((work / "cat" / "catalog.json").read_text())["metadata"]
    assert meta["model"] == "../tiny.keras" and len(meta["model_sha256"]) == 64
    # copied elsewhere: the catalog, its audio, and the model beside the catalog under another name
    there = tmp_path / "there"
    shutil.copytree(work / "cat", there / "cat")
    shutil.copytree(small_corpus.parent, there / "audio")
    shutil.copy(work / "tiny.keras", there / "renamed.keras")
    shutil.rmtree(work)
    shutil.rmtree(small_corpus.parent)
    app = create_app(there / "cat", audio_root=there / "audio")
    assert app.uploads == f"uploads on (model {there / 'renamed.keras'})"  # loaded at start
    client = local_client(app)
    assert client.get("/audio/t3").status_code == 200
    r = client.post("/api/search", params={"k": "3"}, content=(there / "audio" / "t3.wav").read_bytes(),
                    headers={"x-filename": "t3.wav"})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["track_id"] == "t3" and r.json()["results"][0]["score"] == pytest.approx(1, abs=1e-4)
    # a model that did not embed the catalog is refused in one line, before serving
    save_model(build_model(config), tmp_path / "other.keras")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    capsys.readouterr()
    serve = ["serve", str(there / "cat"), "--audio-root", str(there / "audio")]
    assert main(serve + ["--model", str(tmp_path / "other.keras")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not the model that embedded this catalog" in err[0], err
    # no model to be found: the page is served, and the terminal says why uploads are off
    (there / "renamed.keras").unlink()
    assert main(serve) == 0
    assert "serve: uploads off: the catalog's model (../tiny.keras, SHA-256" in capsys.readouterr().err
