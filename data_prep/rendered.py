"""The old name of :mod:`mdsim.recipes.rendered`: ``python -m data_prep.rendered`` runs it, and
importing ``data_prep.rendered`` gives that very module."""

import sys

from mdsim.recipes import rendered

if __name__ == "__main__":
    raise SystemExit(rendered.main())
sys.modules[__name__] = rendered
