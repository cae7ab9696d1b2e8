"""mcsmp: Monte Carlo latency estimator for Linux kernel IPI fan-outs.

See ``MODEL.md`` (shipped in the shared model contract) for what is estimated, and the README for
the command line.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
