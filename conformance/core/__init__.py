"""The data model and the pipeline pieces that know no hypervisor: profiles,
the probe catalog and kernel, record lines, verdicts, results, run records."""
