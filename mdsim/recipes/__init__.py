"""Dataset-specific recipes that turn outside data into mdsim manifests (docs/data_prep.md).

Each runs as ``python -m mdsim.recipes.NAME`` from an installed package:
``mdsim.recipes.msd_lastfm`` the Million Song Dataset's Last.fm tags to a training manifest;
``mdsim.recipes.dimsim`` Dim-sim's triplets to high-agreement evaluation triplets;
``mdsim.recipes.sound_library`` a library of isolated labelled notes (see docs/manifold.md);
``mdsim.recipes.rendered`` a corpus of generated scores with exact key and tempo.
``mdsim.synth`` generates labelled synthetic music (see docs/synthetic.md). The old names
``python -m data_prep.NAME`` still work.
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
