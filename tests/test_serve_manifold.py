"""The 3-D page of a manifold: its points API, the page and script, and audio confined to the root."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

pytest.importorskip("httpx", reason="the HTTP tests need httpx (pip install httpx)")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from mdsim.serve.manifold import create_manifold_app  # noqa: E402
from tests.conftest import sine, write_wav  # noqa: E402


@pytest.fixture
def client(tmp_path):
    root = tmp_path / "notes"
    write_wav(root / "a.wav", sine(440.0, seconds=0.5))
    write_wav(tmp_path / "secret.wav", sine(220.0, seconds=0.5))
    os.symlink(tmp_path / "secret.wav", root / "link.wav")
    points = {"neighbourhood": "instrument", "track_ids": ["a", "b", "c", "d"],
              "xyz": [[0, 0, 0], [2, 0, 0], [0, 4, 0], [0, 0, -2]],
              "instrument": ["flute", "flute", "piano", ""], "pitch": [69, 57, 60, -1],
              "pitch_name": ["A4", "A3", "C4", ""], "split": ["train", "held_out", "train", "new"],
              "source_path": [str(root / "a.wav"), str(tmp_path / "secret.wav"), str(root / "link.wav"), ""]}
    return TestClient(create_manifold_app(points, audio_root=root))


def test_points_are_centred_scaled_and_labelled(client):
    data = client.get("/api/points").json()
    assert data["neighbourhood"] == "instrument" and data["n_notes"] == 4
    xyz = np.array([n["xyz"] for n in data["notes"]])
    np.testing.assert_allclose(xyz.mean(axis=0), 0, atol=1e-5)
    assert np.abs(xyz).max() == pytest.approx(1.0)
    b = data["notes"][1]
    assert (b["id"], b["instrument"], b["pitch"], b["pitch_name"], b["split"]) == ("b", "flute", 57, "A3", "held_out")


def test_page_and_script_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="map"' in page.text and "/static/manifold.js" in page.text
    script = client.get("/static/manifold.js")
    assert script.status_code == 200 and "function rotate" in script.text and "/api/points" in script.text


def test_audio_only_inside_the_root(client):
    assert client.get("/audio/a").status_code == 200
    assert client.get("/audio/a").headers["content-type"] == "audio/wav"
    assert client.get("/audio/b").status_code == 403  # outside the root
    assert client.get("/audio/c").status_code == 403  # a symlink pointing out of it
    assert client.get("/audio/d").status_code == 404  # no file
    assert client.get("/audio/zzz").status_code == 404
