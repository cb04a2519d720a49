"""Reports: each reads run records (conformance/runrecord.py) and nothing else.

Every report opens with the feature view (conformance/features.py); the
probe view follows. A report takes a list of runs: one run record, or the
runs of a merged set (`nvct merge`)."""
