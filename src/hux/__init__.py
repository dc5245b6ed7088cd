"""Mr Hux Alpha Bot and its monitoring stack."""

__version__ = "0.1.0"
