"""The old name of :mod:`mdsim.recipes.sound_library`: ``python -m data_prep.sound_library`` runs it, and
importing ``data_prep.sound_library`` gives that very module."""

import sys

from mdsim.recipes import sound_library

if __name__ == "__main__":
    raise SystemExit(sound_library.main())
sys.modules[__name__] = sound_library
