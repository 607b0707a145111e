"""The installed environment: the lock, the numba crash, and the package as a wheel.

- the environment the suite runs in is ``requirements/lock.txt``, version for version;
- code paths that once crashed the interpreter (numba inside ``librosa.estimate_tuning``)
  run in a subprocess, so a crash is one failed test with its message, not a dead suite;
- a wheel built from the repository, installed into a new virtual environment outside
  it, runs ``mdsim --help``, ``python -m mdsim.demo --help`` and ``mdsim prep`` on a
  bundled recording (the recordings and the synthetic corpus travel in the wheel).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
SUBPROCESS_TIMEOUT = 600


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of a lock file of ``name==version`` lines."""
    pins = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)", line)
        if m is None:
            raise ValueError(f"{path}:{n}: {line!r} is not of the form name==version")
        pins[_normalise(m.group(1))] = m.group(3)
    return pins


def lock_drift(pins: dict[str, str], installed: dict[str, str], *, ignore=("mdsim",)) -> list[str]:
    """What differs between the lock and the environment, one line each (empty: none)."""
    problems = []
    for name, version in sorted(pins.items()):
        have = installed.get(name)
        if have is None:
            problems.append(f"{name}=={version} is in the lock but not installed")
        elif have != version:
            problems.append(f"{name} is {have}, the lock says {version}")
    for name in sorted(set(installed) - set(pins) - set(ignore)):
        problems.append(f"{name}=={installed[name]} is installed but not in the lock")
    return problems


def installed_versions() -> dict[str, str]:
    """What the environment's site-packages hold. Not every folder on ``sys.path``: once
    setuptools is imported it appends its ``_vendor`` folder, whose private copies of
    packaging, wheel, jaraco.* and others are not installed packages."""
    paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    return {_normalise(d.metadata["Name"]): d.version for d in metadata.distributions(path=paths)
            if d.metadata["Name"]}


def run_python(code: str, *, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT, cwd=cwd, env=env)


def explain(proc: subprocess.CompletedProcess) -> str:
    how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
    return f"{how}\n--- stdout (end) ---\n{proc.stdout[-2000:]}\n--- stderr (end) ---\n{proc.stderr[-4000:]}"


# -- the lock ----------------------------------------------------------------------------------


def test_environment_matches_the_lock():
    drift = lock_drift(read_lock(LOCK), installed_versions())
    assert not drift, ("this environment is not requirements/lock.txt (rebuild it: `make clean install`, "
                       "or `make lock` if the lock is what should change):\n  " + "\n  ".join(drift))


def test_setuptools_vendored_copies_are_not_taken_for_installed_packages():
    import setuptools  # noqa: F401  (appends setuptools/_vendor to sys.path)

    assert "jaraco-text" not in installed_versions()
    assert installed_versions()["setuptools"] == read_lock(LOCK)["setuptools"]


def test_lock_drift_names_each_difference():
    pins = {"numba": "0.61.2", "numpy": "2.2.6", "h5py": "3.14.0"}
    installed = {"numba": "0.68.1", "numpy": "2.2.6", "torch": "2.13.0", "mdsim": "0.1.0"}
    assert lock_drift(pins, installed) == [
        "h5py==3.14.0 is in the lock but not installed",
        "numba is 0.68.1, the lock says 0.61.2",
        "torch==2.13.0 is installed but not in the lock",
    ]
    assert lock_drift(pins, {**pins, "mdsim": "0.1.0"}) == []


def test_lock_pins_every_requirement_exactly():
    pins = read_lock(LOCK)
    for name in ("numpy", "numba", "llvmlite", "librosa", "keras", "tensorflow", "madmom", "h5py",
                 "soxr", "audioread", "jax", "pytest", "pip", "setuptools", "cython"):
        assert name in pins, f"{name} is missing from {LOCK}"
    # Transitive dependencies are there too, not only setup.cfg's names.
    assert {"scipy", "soundfile", "cffi", "ml-dtypes"} <= set(pins)


def test_read_lock_rejects_a_range(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# header\nnumpy==2.2.6\nscipy>=1.10\n")
    with pytest.raises(ValueError, match=r"lock.txt:3: 'scipy>=1.10' is not of the form name==version"):
        read_lock(lock)


# -- code paths that crashed the interpreter, each in its own process ---------------------------


def test_librosa_estimate_tuning_runs_in_a_subprocess():
    # The one-liner that died of a segmentation fault with numba 0.68.1 / llvmlite 0.50.0,
    # then the tuning of a tone 30 cents above A4, which it must find.
    proc = run_python("""
        import numpy as np, librosa
        sr = 22050
        print(librosa.estimate_tuning(y=np.random.default_rng(0).standard_normal(66150).astype(np.float32), sr=sr))
        t = np.arange(3 * sr) / sr
        y = np.sin(2 * np.pi * 440.0 * 2 ** (0.3 / 12) * t).astype(np.float32)
        print(librosa.estimate_tuning(y=y, sr=sr))
    """)
    assert proc.returncode == 0, "librosa.estimate_tuning crashed: " + explain(proc)
    noise, tone = (float(v) for v in proc.stdout.split())
    assert -0.5 <= noise < 0.5
    assert tone == pytest.approx(0.3, abs=0.03)


def test_estimated_tuning_option_centres_a_detuned_tone_on_its_pitch_class():
    # `mdsim prep --estimate-tuning` (FeatureConfig(tuning=None)) on A6 played 40 cents sharp:
    # with the tuning estimated, CENS centres it on A (G# and A# equal); with A440 fixed it
    # leaks towards A#. (A6, not A4: at n_fft 512 one STFT bin spans 43 Hz, more than a
    # semitone below about 700 Hz.)
    proc = run_python("""
        import numpy as np
        from mdsim.config import FeatureConfig
        from mdsim.features.spectral import extract_features
        sr = 22050
        t = np.arange(5 * sr) / sr
        y = (0.5 * np.sin(2 * np.pi * 1760.0 * 2 ** (0.4 / 12) * t)).astype(np.float32)
        for tuning in (None, 0.0):
            energy = extract_features(y, config=FeatureConfig(tuning=tuning))["cens"].mean(axis=1)
            print(" ".join(str(v) for v in energy / energy.sum()))
    """, cwd=ROOT)
    assert proc.returncode == 0, "extract_features with estimated tuning crashed: " + explain(proc)
    estimated, fixed = ([float(v) for v in line.split()] for line in proc.stdout.splitlines())
    assert max(range(12), key=estimated.__getitem__) == 9
    assert estimated[8] == pytest.approx(estimated[10], abs=0.05), estimated
    assert fixed[10] - fixed[8] > 0.2, fixed


def test_bench_prep_librosa_reference_path_runs_to_the_end():
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "bench_prep.py"), "--repeats", "1",
                           "--no-madmom"], capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, cwd=ROOT)
    assert proc.returncode == 0, "experiments/bench_prep.py failed: " + explain(proc)
    speed = {line[:36].strip(): float(line[36:].split()[0]) for line in proc.stdout.splitlines()
             if line.startswith(("fused extractor", "three-call librosa path"))}
    assert set(speed) == {"fused extractor (one STFT)", "three-call librosa path"}, proc.stdout
    assert all(v > 1 for v in speed.values()), speed  # both far faster than real time


# -- the package as a wheel, outside the repository --------------------------------------------


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_repository(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(ROOT)], capture_output=True, text=True,
                           timeout=SUBPROCESS_TIMEOUT, cwd=tmp_path)
    assert build.returncode == 0, "pip wheel failed: " + explain(build)
    (wheel,) = wheels.glob("mdsim-*.whl")

    # A new environment outside the repository; its dependencies are the locked ones of the
    # running environment, seen through a plain path entry (which, unlike a site directory,
    # does not run that environment's .pth files, so the editable mdsim stays invisible).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    vpy = venv / "bin" / "python"
    site = Path(subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "locked-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(vpy), "install", "-q", "--no-deps",
                              "--no-index", str(wheel)], capture_output=True, text=True,
                             timeout=SUBPROCESS_TIMEOUT, cwd=tmp_path)
    assert install.returncode == 0, "installing the wheel failed: " + explain(install)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    work = tmp_path / "work"
    work.mkdir()

    def run(*argv):
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
                              cwd=work, env=env)
        assert proc.returncode == 0, f"{' '.join(map(str, argv))}: " + explain(proc)
        return proc.stdout

    where = run(str(vpy), "-c", "import mdsim, mdsim.data, mdsim.synth; print(mdsim.__file__); "
                                "print(sorted(p.name for p in mdsim.data.AUDIO_DIR.iterdir()))")
    assert str(site) in where.splitlines()[0], f"mdsim was not imported from the wheel: {where}"
    assert "robin.ogg" in where and "ATTRIBUTION.md" in where
    assert "prep" in run(str(venv / "bin" / "mdsim"), "--help")
    # the named configs ship in the wheel: --help lists them, a name finds the file
    assert "multi_input_6dim_384" in run(str(venv / "bin" / "mdsim"), "train", "--help")
    assert str(site) in run(str(vpy), "-c", "from mdsim.configs import find_config; "
                                          "print(find_config('multi_input_6dim_384'))")
    # so do the dataset recipes
    recipe = run(str(vpy), "-m", "mdsim.recipes.sound_library", "--help")
    assert recipe.startswith("usage: python -m mdsim.recipes.sound_library"), recipe
    assert "--tracks" in run(str(vpy), "-m", "mdsim.demo", "--help")
    # and the default model: loaded from the installed package, with no argument
    loaded = run(str(vpy), "-c", "import mdsim; m = mdsim.load_model(); print(m.path); print(m.dimensions)")
    assert str(site / "mdsim" / "models" / "default.keras") in loaded and "'tempo'" in loaded, loaded

    robin = site / "mdsim" / "data" / "audio" / "robin.ogg"
    manifest = work / "manifest.csv"
    manifest.write_text(f"track_id,path,genre\nrobin,{robin},ambient\n")
    out = run(str(venv / "bin" / "mdsim"), "prep", str(manifest), "--out", "store.h5", "--estimate-tuning")
    assert "robin" in run(str(venv / "bin" / "mdsim"), "inspect", "store.h5"), out

    # The demo's data source from the wheel: two synthetic tracks.
    run(str(vpy), "-m", "mdsim.synth", "--n", "2", "--out", "synth", "--seed", "0", "--duration-range", "3", "4")
    assert len(list((work / "synth" / "audio").glob("*.wav"))) == 2
