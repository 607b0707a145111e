"""Sound sources of the synthetic tracks: lead instruments, accompaniment, drums.

Every source is a plain function returning a mono ``float32`` array at
sample rate ``sr``; none loops over samples in Python. Harmonic tones read
one band-limited wavetable per note (built with an inverse FFT, so its cost
does not grow with the number of partials); the plucked string is a
Karplus-Strong loop run a period at a time; the piano sums a few inharmonic
partials; drums are short one-shots built once per track.

Lead instruments share one signature::

    lead(f0, gate, *, sr, brightness, rng) -> np.ndarray [shape=(n,), dtype=float32]

``f0`` in Hz, ``gate`` the held time in seconds (the result also holds the
release), ``brightness`` in 0..1 (the mood's colour).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

TABLE_SIZE = 4096
#: Partials stop below this fraction of the sample rate (no aliasing).
BAND_LIMIT = 0.45


def midi_to_hz(pitch) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69) / 12)


def wavetable(amps) -> np.ndarray:
    """One cycle of ``sum_k amps[k-1] * sin(2 pi k t)``, ``TABLE_SIZE + 1`` samples (wrapped)."""
    spectrum = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
    spectrum[1:len(amps) + 1] = -0.5j * TABLE_SIZE * np.asarray(amps, dtype=np.float64)
    table = np.fft.irfft(spectrum, n=TABLE_SIZE).astype(np.float32)
    return np.append(table, table[0])


def read_table(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Linear-interpolated wavetable lookup at phases given in cycles (any float array)."""
    pos = (cycles - np.floor(cycles)) * TABLE_SIZE  # not `% 1.0`: ten times slower
    index = pos.astype(np.int32)
    frac = (pos - index).astype(np.float32)
    lo = table[index]
    return lo + frac * (table[index + 1] - lo)


def n_partials(f0: float, sr: int, limit: int = 60) -> int:
    return int(max(1, min(limit, BAND_LIMIT * sr // max(f0, 1.0))))


def envelope(n: int, sr: int, *, attack: float, gate: float, release: float,
             decay: float = 0.0, sustain: float = 1.0) -> np.ndarray:
    """Linear attack, exponential decay to ``sustain`` while held, exponential release.

    Returns float32 of length ``n``; times in seconds.
    """
    t = np.arange(n, dtype=np.float32) / np.float32(sr)
    env = np.minimum(np.float32(1), t / np.float32(max(attack, 1e-4)))
    if decay > 0:
        env *= sustain + (1 - sustain) * np.exp(-np.maximum(t - attack, 0) / np.float32(decay))
    held = min(n, int(gate * sr))
    env[held:] *= np.exp((t[held] - t[held:]) * np.float32(6.9 / max(release, 1e-3)))
    return env


def _length(gate: float, release: float, sr: int) -> int:
    return int((gate + release) * sr) + 1


def _vibrato_cycles(f0, n, sr, *, rate, depth, delay, rng):
    """Phase in cycles of a tone with delayed sinusoidal vibrato (depth: fraction of f0)."""
    t = np.arange(n) / sr
    ramp = np.clip((t - delay) / 0.3, 0, 1)
    freq = f0 * (1 + depth * ramp * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    return np.cumsum(freq) / sr


def _noise(rng, n, sos=None) -> np.ndarray:
    x = rng.standard_normal(n)
    if sos is not None:
        x = signal.sosfilt(sos, x)
    return x.astype(np.float32)


def _rolloff(k, brightness):
    """Extra spectral tilt of partial k: darker moods lose the upper partials."""
    return np.exp(-(k - 1) / (2 + 14 * brightness))


# --------------------------------------------------------------------------------------
# Lead instruments


def plucked(f0, gate, *, sr, brightness, rng):
    """Karplus-Strong string: noise burst in a delay loop with a lowpass and a fractional delay.

    The loop is ``y[n] = x[n] + g (w0 y[n-N] + w1 y[n-N-1] + w2 y[n-N-2])``,
    where ``w`` is a two-point average (delay 1/2) convolved with a linear
    interpolator (delay ``frac``), so the period ``N + 1/2 + frac`` is tuned
    exactly. Every tap reaches back at least one period, so a whole period
    is computed in one vector step.
    """
    release = 0.08
    n = _length(gate, release, sr)
    period = sr / f0
    delay = int(np.floor(period - 0.5))
    frac = period - 0.5 - delay
    w0, w1, w2 = 0.5 * (1 - frac), 0.5, 0.5 * frac
    t60 = 3.0 * (220.0 / f0) ** 0.5
    g = 10 ** (-3 / (t60 * f0))
    burst = rng.uniform(-1, 1, delay)
    smooth = 0.15 + 0.8 * brightness  # one-pole lowpass of the excitation: the pick's hardness
    burst = signal.lfilter([smooth], [1, smooth - 1], burst)
    y = np.zeros(n + 2 * delay + 2)
    off = delay + 2  # y[off + i] is output sample i; earlier entries stay zero
    y[off:off + min(delay, n)] = burst[:n]
    for start in range(off + delay, off + n, delay):
        stop = min(start + delay, off + n)
        m = stop - start
        y[start:stop] += g * (w0 * y[start - delay:start - delay + m]
                              + w1 * y[start - delay - 1:start - delay - 1 + m]
                              + w2 * y[start - delay - 2:start - delay - 2 + m])
    out = y[off:off + n].astype(np.float32)
    out -= out.mean()
    return out * envelope(n, sr, attack=0.001, gate=gate, release=release) * 1.6


def bowed(f0, gate, *, sr, brightness, rng):
    """Bowed string: band-limited sawtooth, slow attack, delayed vibrato, a little bow noise."""
    release = 0.2
    n = _length(gate, release, sr)
    k = np.arange(1, n_partials(f0, sr) + 1)
    amps = (1.0 / k) * _rolloff(k, brightness) * (1 + 0.6 * np.exp(-((k * f0 - 1200) / 600) ** 2))
    cycles = _vibrato_cycles(f0, n, sr, rate=5.5, depth=0.006, delay=0.25, rng=rng)
    tone = read_table(wavetable(amps), cycles)
    bow = _noise(rng, n, _bow_noise_sos(sr)) * 0.03
    return (tone + bow) * envelope(n, sr, attack=0.18, gate=gate, release=release)


#: Hammond drawbar footages as multiples of the fundamental, and a classic registration.
DRAWBAR_RATIOS = (0.5, 1, 1.5, 2, 3, 4, 5, 6, 8)
DRAWBAR_LEVELS = (0.6, 1.0, 0.7, 0.6, 0.3, 0.4, 0.2, 0.15, 0.2)


def organ(f0, gate, *, sr, brightness, rng):
    """Tonewheel organ: additive drawbars, instant attack, key click, Leslie tremolo."""
    release = 0.04
    n = _length(gate, release, sr)
    base = f0 / 2  # the 16' drawbar is the lowest partial
    amps = np.zeros(16)
    for ratio, level in zip(DRAWBAR_RATIOS, DRAWBAR_LEVELS):
        k = int(ratio * 2)
        if k * base < BAND_LIMIT * sr:
            amps[k - 1] = level * (1.0 if ratio <= 2 else 0.4 + 0.6 * brightness)
    t = np.arange(n) / sr
    tone = read_table(wavetable(amps), base * t)
    tone *= (1 + 0.12 * np.sin(2 * np.pi * 6.3 * t + rng.uniform(0, 2 * np.pi))).astype(np.float32)
    click = np.zeros(n, dtype=np.float32)
    m = min(n, int(0.004 * sr))
    click[:m] = _noise(rng, m) * 0.3
    return (tone * 0.5 + click) * envelope(n, sr, attack=0.003, gate=gate, release=release)


def brass(f0, gate, *, sr, brightness, rng):
    """Brass: sawtooth whose brightness follows a filter envelope, with a pitch scoop."""
    release = 0.1
    n = _length(gate, release, sr)
    k = np.arange(1, n_partials(f0, sr) + 1)
    dull = wavetable((1.0 / k) * np.exp(-(k - 1) / 1.5))
    bright = wavetable((1.0 / k) * _rolloff(k, 0.3 + 0.7 * brightness))
    t = np.arange(n) / sr
    scoop = 1 - 0.03 * np.exp(-t / 0.03)
    cycles = np.cumsum(f0 * scoop) / sr
    # the "filter" opens in 60 ms, then settles to 45 % brightness
    opening = np.minimum(1, t / 0.06) * (0.45 + 0.55 * np.exp(-np.maximum(t - 0.06, 0) / 0.25))
    opening = opening.astype(np.float32)
    tone = read_table(dull, cycles) * (1 - opening) + read_table(bright, cycles) * opening
    return tone * envelope(n, sr, attack=0.04, gate=gate, release=release)


def piano(f0, gate, *, sr, brightness, rng):
    """Piano: stretched (inharmonic) partials, the upper ones dying first, and a hammer thump."""
    release = 0.12
    n = _length(min(gate, 1.5), release, sr)
    k = np.arange(1, min(12, n_partials(f0, sr)) + 1)
    stiffness = 4e-4
    freqs = k * f0 * np.sqrt(1 + stiffness * k**2)
    keep = freqs < BAND_LIMIT * sr
    k, freqs = k[keep], freqs[keep]
    amps = (1.0 / k**1.1) * _rolloff(k, brightness)
    tau = 1.2 * (262.0 / f0) ** 0.5 / (1 + 0.5 * (k - 1))
    t = np.arange(n, dtype=np.float32) / sr
    # float32 throughout: its sin and exp are vectorised (an order of magnitude faster than float64)
    cycles = np.outer((freqs / sr).astype(np.float32), np.arange(n, dtype=np.float32))
    cycles -= np.floor(cycles)
    partials = np.sin(np.float32(2 * np.pi) * cycles) * np.exp(-t[None, :] / tau[:, None].astype(np.float32))
    tone = (amps.astype(np.float32) @ partials).astype(np.float32)
    m = min(n, int(0.01 * sr))
    tone[:m] += _noise(rng, m) * np.linspace(0.3, 0, m, dtype=np.float32)
    return tone * envelope(n, sr, attack=0.002, gate=min(gate, 1.5), release=release)


def flute(f0, gate, *, sr, brightness, rng):
    """Flute: nearly a sine, breath noise (strongest at the attack), gentle vibrato."""
    release = 0.1
    n = _length(gate, release, sr)
    amps = np.array([1.0, 0.22, 0.07, 0.03])[: n_partials(f0, sr)] * (0.6 + 0.4 * brightness)
    amps[0] = 1.0
    cycles = _vibrato_cycles(f0, n, sr, rate=5.0, depth=0.004, delay=0.2, rng=rng)
    tone = read_table(wavetable(amps), cycles)
    t = np.arange(n, dtype=np.float32) / sr
    breath = _noise(rng, n, _breath_sos(sr)) * (0.05 + 0.25 * np.exp(-t / 0.05))
    return (tone + breath) * envelope(n, sr, attack=0.07, gate=gate, release=release)


#: The lead instruments, by tag.
LEADS = {"plucked": plucked, "bowed": bowed, "organ": organ, "brass": brass,
         "piano": piano, "flute": flute}


@lru_cache(maxsize=None)
def _bow_noise_sos(sr):
    return signal.butter(2, 3000, "highpass", fs=sr, output="sos")


@lru_cache(maxsize=None)
def _breath_sos(sr):
    return signal.butter(2, (800, 5000), "bandpass", fs=sr, output="sos")


# --------------------------------------------------------------------------------------
# Accompaniment


def keys_tone(f0, gate, *, sr, attack):
    """The chord instrument (the same in every track): a soft electric-piano-like tone."""
    release = 0.12
    n = _length(gate, release, sr)
    amps = np.array([1.0, 0.35, 0.12, 0.05])[: n_partials(f0, sr)]
    tone = read_table(wavetable(amps), f0 * np.arange(n) / sr)
    return tone * envelope(n, sr, attack=attack, gate=gate, release=release, decay=0.6, sustain=0.55)


def bass_tone(f0, gate, *, sr, kind):
    """The bass: a round plucked tone, or a sub-bass sine for half-time."""
    release = 0.05
    n = _length(gate, release, sr)
    amps = [1.0, 0.08] if kind == "sub" else [1.0, 0.55, 0.25, 0.12, 0.05]
    tone = read_table(wavetable(amps[: n_partials(f0, sr)]), f0 * np.arange(n) / sr)
    if kind == "sub":
        return tone * envelope(n, sr, attack=0.01, gate=gate, release=release)
    return tone * envelope(n, sr, attack=0.004, gate=gate, release=release, decay=0.25, sustain=0.6)


# --------------------------------------------------------------------------------------
# Drums: one-shots with sharp attacks, built once per track (a little detuned per kit)


def _decay(n, sr, tau):
    return np.exp(-np.arange(n, dtype=np.float32) / (tau * sr))


def drum_kit(rng: np.random.Generator, sr: int) -> dict:
    """The one-shots of one track's kit, ``{name: float32 array}``, peak about 1."""
    tune = rng.uniform(0.92, 1.08)

    def n_of(seconds):
        return int(seconds * sr)

    def band(n, low, high, order=2):
        high = min(high, 0.45 * sr)
        sos = signal.butter(order, (low, high), "bandpass", fs=sr, output="sos")
        return _noise(rng, n, sos)

    kit = {}
    n = n_of(0.4)
    t = np.arange(n) / sr
    sweep = 48 * tune + 120 * np.exp(-t / 0.025)
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / sr).astype(np.float32) * _decay(n, sr, 0.18)
    kick[: n_of(0.003)] += band(n_of(0.003), 1000, 6000) * 0.5
    kit["kick"] = kick

    n = n_of(0.25)
    t = np.arange(n) / sr
    body = np.sin(2 * np.pi * 185 * tune * t).astype(np.float32) * _decay(n, sr, 0.05)
    kit["snare"] = body * 0.7 + band(n, 1500, 9000) * _decay(n, sr, 0.07) * 1.2

    kit["hat"] = band(n_of(0.08), 6000, 10500) * _decay(n_of(0.08), sr, 0.018) * 1.6
    kit["hat_open"] = band(n_of(0.3), 5500, 10500) * _decay(n_of(0.3), sr, 0.12) * 1.3
    kit["hat_pedal"] = band(n_of(0.06), 5000, 10000) * _decay(n_of(0.06), sr, 0.012) * 1.2
    swell = np.sin(np.linspace(0, np.pi, n_of(0.07))).astype(np.float32)
    kit["shaker"] = band(n_of(0.07), 4000, 10000) * swell * 1.2

    n = n_of(0.3)
    bursts = np.zeros(n, dtype=np.float32)
    for offset in (0.0, 0.011, 0.022):
        i = n_of(offset)
        bursts[i:] += _decay(n - i, sr, 0.006 if offset < 0.02 else 0.06)
    kit["clap"] = band(n, 900, 3500) * bursts * 1.6

    n = n_of(0.9)
    t = np.arange(n) / sr
    ratios = np.array([1.0, 1.47, 1.93, 2.61, 3.37]) * 420 * tune
    metal = (np.sin(2 * np.pi * np.outer(ratios, t)).sum(0) / 3).astype(np.float32)
    kit["ride"] = (metal * 0.5 + band(n, 5000, 10000) * 0.7) * _decay(n, sr, 0.35)
    kit["crash"] = band(n_of(1.5), 3000, 10000) * _decay(n_of(1.5), sr, 0.45)

    n = n_of(0.08)
    t = np.arange(n) / sr
    kit["clave"] = np.sin(2 * np.pi * 2500 * tune * t).astype(np.float32) * _decay(n, sr, 0.018)
    n = n_of(0.3)
    t = np.arange(n) / sr
    conga_f = 210 * tune * (1 + 0.3 * np.exp(-t / 0.01))
    kit["conga"] = np.sin(2 * np.pi * np.cumsum(conga_f) / sr).astype(np.float32) * _decay(n, sr, 0.08)
    for name, hit in kit.items():
        kit[name] = (hit / np.max(np.abs(hit))).astype(np.float32)
    return kit
