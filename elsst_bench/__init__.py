"""elsst-bench: concept retrieval over ELSST and parameter-efficient adapters for sentence encoders."""

__version__ = "0.1.0"
