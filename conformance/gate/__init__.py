"""The gate: expectations against results, features, and comparing runs."""
