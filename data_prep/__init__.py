"""Dataset-specific recipes that turn outside data into mdsim manifests.

``mdsim.synth`` generates labelled synthetic music (see docs/synthetic.md);
``data_prep.sound_library`` a library of isolated labelled notes (see docs/manifold.md).
"""
