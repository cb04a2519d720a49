"""Reports: each reads run records (conformance/core/runrecord.py) and nothing else.

Every report opens with the feature view (conformance/gate/features.py); the
probe view follows. A report takes a list of runs: one run record, or the
runs of a merged set (`nvct merge`)."""
