"""Era treatments: the production and carrier of a synthetic track.

An era is a chain applied to the finished (mono) mix: bandwidth, saturation,
noise of the carrier, reverb character, dynamics and loudness. The output of
mdsim is mono, so stereo width is not a factor; every era is heard through
the remaining five.

=========  ===========================================================================
era        treatment
=========  ===========================================================================
shellac    150 Hz - 4 kHz band, soft saturation, surface hiss and crackle, small
           dark room, quiet (peak -6 dBFS)
tape       7 kHz lowpass, low-mid head bump, tape saturation, hiss, plate reverb,
           peak -3 dBFS
digital    full band, clean, long bright hall, wide dynamics, peak -2 dBFS
lofi       sample-and-hold at 7.35 kHz, 8-bit quantisation, 4.5 kHz lowpass, vinyl
           crackle, pumping compression
modern     full band with sub-bass and "air" lifts, compression, a look-ahead
           limiter and saturation (loud, low crest factor), short room, peak -0.2 dBFS
=========  ===========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal


@dataclass(frozen=True)
class EraStyle:
    """Parameters of one era's chain (frequencies in Hz, times in seconds)."""

    highpass: float
    lowpass: float | None
    drive: float  # tanh saturation drive; 0 = clean
    hiss_db: float | None  # noise floor relative to the signal peak
    crackle_rate: float  # clicks per second
    reverb_time: float  # RT60
    reverb_mix: float
    reverb_tone: float  # lowpass of the reverb tail
    compress: float  # 0 = none, 1 = hard
    peak: float  # final peak level
    hold: int = 1  # sample-and-hold factor (lofi)
    bits: int | None = None
    low_boost_db: float = 0.0  # shelf below 150 Hz
    air_boost_db: float = 0.0  # shelf above 5 kHz
    limit_db: float | None = None  # limiter threshold below the peak


ERA_STYLES = {
    "shellac": EraStyle(highpass=150, lowpass=4000, drive=1.6, hiss_db=-30, crackle_rate=12,
                        reverb_time=0.5, reverb_mix=0.15, reverb_tone=2000, compress=0.0, peak=0.5),
    "tape": EraStyle(highpass=40, lowpass=7000, drive=2.0, hiss_db=-40, crackle_rate=0,
                     reverb_time=1.4, reverb_mix=0.18, reverb_tone=4000, compress=0.3, peak=0.7,
                     low_boost_db=3.0),
    "digital": EraStyle(highpass=20, lowpass=None, drive=0.0, hiss_db=None, crackle_rate=0,
                        reverb_time=2.2, reverb_mix=0.22, reverb_tone=9000, compress=0.0, peak=0.8),
    "lofi": EraStyle(highpass=60, lowpass=4500, drive=1.2, hiss_db=-40, crackle_rate=5,
                     reverb_time=0.8, reverb_mix=0.12, reverb_tone=3000, compress=0.8, peak=0.7,
                     hold=3, bits=8),
    "modern": EraStyle(highpass=25, lowpass=None, drive=1.5, hiss_db=None, crackle_rate=0,
                       reverb_time=0.6, reverb_mix=0.1, reverb_tone=8000, compress=0.7, peak=0.98,
                       low_boost_db=4.0, air_boost_db=5.0, limit_db=-9.0),
}


def _sos(kind, freq, sr, order=4):
    return signal.butter(order, freq, kind, fs=sr, output="sos")


def reverb(x: np.ndarray, sr: int, rng, *, time: float, mix: float, tone: float) -> np.ndarray:
    """Convolution with exponentially decaying, lowpassed noise (RT60 ``time``)."""
    n = int(time * sr)
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / time)
    ir = signal.sosfilt(_sos("lowpass", min(tone, 0.45 * sr), sr, 2), ir)
    ir[: int(0.012 * sr)] = 0  # pre-delay keeps the dry attacks in front
    ir /= np.sqrt(np.sum(ir**2))
    wet = signal.fftconvolve(x.astype(np.float32), ir.astype(np.float32))[: len(x)]
    return (1 - mix) * x + mix * wet


def compress(x: np.ndarray, sr: int, *, amount: float) -> np.ndarray:
    """Feed-forward compression on a peak envelope (max over 10 ms, smoothed over 50 ms)."""
    env = ndimage.maximum_filter1d(np.abs(x), size=int(0.01 * sr))
    a = np.exp(-1 / (0.05 * sr))
    env = signal.lfilter([1 - a], [1, -a], env)
    threshold = 0.5 * np.max(env) * (1 - 0.6 * amount)
    ratio = 1 + 5 * amount
    gain = np.where(env > threshold, (np.maximum(env, 1e-9) / threshold) ** (1 / ratio - 1), 1.0)
    return x * gain


def limit(x: np.ndarray, sr: int, *, threshold_db: float) -> np.ndarray:
    """Look-ahead peak limiter: gain from a centred 5 ms max envelope, smoothed over 5 ms.

    The envelope is centred on each sample, so gain reduction starts before a
    peak arrives; the result peaks near ``threshold_db`` below the input peak.
    """
    width = int(0.005 * sr) | 1
    env = ndimage.maximum_filter1d(np.abs(x), size=2 * width)
    env = ndimage.uniform_filter1d(env, size=width)
    threshold = np.max(np.abs(x)) * 10 ** (threshold_db / 20)
    return x * np.minimum(1.0, threshold / np.maximum(env, 1e-9))


def _shelf(x: np.ndarray, sr: int, *, kind: str, freq: float, gain_db: float) -> np.ndarray:
    """Shelving boost: add back a filtered copy (``kind`` "lowpass" or "highpass")."""
    return x + (10 ** (gain_db / 20) - 1) * signal.sosfilt(_sos(kind, freq, sr, 2), x)


def surface_noise(n: int, sr: int, rng, *, hiss_db, crackle_rate: float) -> np.ndarray:
    """Hiss (level relative to a unit peak) plus Poisson crackle clicks."""
    noise = np.zeros(n, dtype=np.float32)
    if hiss_db is not None:
        noise += rng.standard_normal(n, dtype=np.float32) * np.float32(10 ** (hiss_db / 20))
    if crackle_rate > 0:
        count = rng.poisson(crackle_rate * n / sr)
        sizes = np.minimum(rng.pareto(3, count) * 0.15, 0.5)  # heavy-tailed, but below the music's peak
        amps = (rng.uniform(-1, 1, count) * sizes).astype(np.float32)
        where = rng.integers(0, n, count)
        click = np.zeros(int(0.004 * sr))
        click[0] = 1.0
        click = signal.sosfilt(_sos("highpass", 1500, sr, 2), click).astype(np.float32)
        index = where[:, None] + np.arange(len(click))
        inside = index < n
        np.add.at(noise, index[inside], (amps[:, None] * click)[inside])  # clicks may overlap
    return noise


def produce(mix: np.ndarray, sr: int, rng: np.random.Generator, *, era: str,
            level: float = 1.0) -> np.ndarray:
    """Apply the chain of ``era`` to a mono mix; return float32 peaking at ``peak * level``."""
    style = ERA_STYLES[era]
    x = np.asarray(mix, dtype=np.float32)  # float32 throughout: half the memory traffic
    x = x / (np.max(np.abs(x)) + 1e-12)
    if style.low_boost_db:
        x = _shelf(x, sr, kind="lowpass", freq=150, gain_db=style.low_boost_db)
    if style.air_boost_db:
        x = _shelf(x, sr, kind="highpass", freq=5000, gain_db=style.air_boost_db)
    x = reverb(x, sr, rng, time=style.reverb_time, mix=style.reverb_mix, tone=style.reverb_tone)
    if style.compress:
        x = compress(x, sr, amount=style.compress)
    if style.limit_db is not None:
        x = limit(x, sr, threshold_db=style.limit_db)
    if style.drive:
        x = x / (np.max(np.abs(x)) + 1e-12)
        x = np.tanh(style.drive * x) / np.tanh(style.drive)
    if style.hold > 1:
        x = np.repeat(x[:: style.hold], style.hold)[: len(x)]
    x = x / (np.max(np.abs(x)) + 1e-12)
    x = x + surface_noise(len(x), sr, rng, hiss_db=style.hiss_db, crackle_rate=style.crackle_rate)
    if style.bits:
        step = 2.0 ** (1 - style.bits)
        x = np.round(x / step) * step
    band = [style.highpass, style.lowpass] if style.lowpass else style.highpass
    x = signal.sosfilt(_sos("bandpass" if style.lowpass else "highpass", band, sr), x)
    x = x / (np.max(np.abs(x)) + 1e-12) * min(style.peak * level, 0.99)
    return x.astype(np.float32)
