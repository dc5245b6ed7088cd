"""Doubles only the tests use (demo mode runs the ones in hux.doubles)."""
