"""Dataset-specific recipes that turn outside data into mdsim manifests.

``mdsim.synth`` generates labelled synthetic music (see docs/synthetic.md);
``data_prep.sound_library`` a library of isolated labelled notes (see docs/manifold.md);
``data_prep.rendered`` a corpus of generated scores with exact key and tempo (docs/data_prep.md).
"""

import sys


def write_manifest_or_fail(make) -> int:
    """A generating recipe's exit: ``make()`` writes the corpus and returns its manifest, which
    is printed (status 0); bad input ends in one ``error:`` line (status 2)."""
    from mdsim.errors import MdsimError

    try:
        manifest = make()
    except MdsimError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(manifest)
    return 0
