"""Make the running environment exactly requirements/lock.txt: uninstall what it holds beyond the
lock (``make install`` runs it after installing the lock, so a package installed by hand, or left
by an older lock, does not linger). mdsim itself is kept.

    python requirements/sync.py requirements/lock.txt
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_names(lock: Path) -> set[str]:
    names = set()
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(normalise(re.split(r"[=<>!~\[ ;]", line, maxsplit=1)[0]))
    return names


def main(argv=None) -> int:
    (lock,) = argv if argv is not None else sys.argv[1:]
    keep = locked_names(Path(lock)) | {"mdsim"}
    extra = sorted({d.metadata["Name"] for d in metadata.distributions()
                    if d.metadata["Name"] and normalise(d.metadata["Name"]) not in keep})
    if extra:
        print(f"removing packages that are not in {lock}: {', '.join(extra)}")
        subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "-q", "-y", *extra])
    return 0


if __name__ == "__main__":
    sys.exit(main())
