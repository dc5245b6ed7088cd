"""End-to-end alert scenarios: fault in, notification out (see tests/e2e/conftest.py)."""
