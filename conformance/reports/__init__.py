"""Reports: each reads a RunRecord and nothing else."""
