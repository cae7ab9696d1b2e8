"""Distributions: the families of a parameter file, exact means, CDFs and residual CDFs, and
their packing into the table the compiled samplers read (:mod:`mcsmp.kernels.sampling`)."""

from .dist import Dist, constant, encode, parse_dist
from .families import BASIC, FAMILIES, Component

__all__ = ["BASIC", "FAMILIES", "Component", "Dist", "constant", "encode", "parse_dist"]
