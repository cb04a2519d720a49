"""Driving a profile's stack: one backend per level, boots per level, results
as they arrive."""
