"""Dataset-specific recipes that turn outside data into mdsim manifests.

``data_prep.synth`` generates labelled synthetic music (see docs/synthetic.md).
"""
