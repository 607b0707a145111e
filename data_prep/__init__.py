"""Dataset-specific recipes that turn outside data into mdsim manifests.

``mdsim.synth`` generates labelled synthetic music (see docs/synthetic.md).
"""
