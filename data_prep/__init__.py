"""The dataset recipes moved into the package, :mod:`mdsim.recipes`, so that they run from an
installed wheel (``python -m mdsim.recipes.NAME``). The modules here keep the old names
working: ``python -m data_prep.NAME`` and ``from data_prep.NAME import ...`` reach the same
module of :mod:`mdsim.recipes`.
"""

from mdsim.recipes import write_manifest_or_fail  # noqa: F401  (the old name)
