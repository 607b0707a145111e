"""The old name of :mod:`mdsim.recipes.msd_lastfm`: ``python -m data_prep.msd_lastfm`` runs it, and
importing ``data_prep.msd_lastfm`` gives that very module."""

import sys

from mdsim.recipes import msd_lastfm

if __name__ == "__main__":
    raise SystemExit(msd_lastfm.main())
sys.modules[__name__] = msd_lastfm
