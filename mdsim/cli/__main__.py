"""``python -m mdsim.cli``: the ``mdsim`` command; ``--markdown`` prints docs/cli.md."""

import sys

from mdsim.cli import help_markdown, main

if sys.argv[1:] == ["--markdown"]:
    print(help_markdown(), end="")
    raise SystemExit(0)
raise SystemExit(main())
