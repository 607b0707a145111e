"""``python -m mdsim.synth``: generate a labelled synthetic corpus (see docs/synthetic.md)."""

import sys

from mdsim.synth import main

sys.exit(main())
