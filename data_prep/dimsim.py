"""The old name of :mod:`mdsim.recipes.dimsim`: ``python -m data_prep.dimsim`` runs it, and
importing ``data_prep.dimsim`` gives that very module."""

import sys

from mdsim.recipes import dimsim

if __name__ == "__main__":
    raise SystemExit(dimsim.main())
sys.modules[__name__] = dimsim
