"""Compiled kernels: trusted inputs, no validation (see mcsmp.model for the translation)."""
