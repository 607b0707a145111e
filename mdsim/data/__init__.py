"""Data shipped with the package.

``AUDIO_DIR`` holds eight short, freely licensed recordings (Ogg Vorbis, see
``ATTRIBUTION.md`` beside them). ``make demo`` (``python -m mdsim.demo``) preps
them next to the synthetic corpus, the tests use them for anything that touches
real audio, and they travel in the wheel, so the demo runs from an installed
package too.
"""

from __future__ import annotations

from pathlib import Path

#: Folder of the bundled recordings (``*.ogg``) and their ``ATTRIBUTION.md``.
AUDIO_DIR = Path(__file__).resolve().parent / "audio"
