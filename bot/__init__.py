"""bugbar: triage AI/ML security reports against the SDL AI/ML bug bar."""

__version__ = "0.1.0"
