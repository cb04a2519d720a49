"""Test-only helpers that boot real things (an emulated Xen host)."""
