"""The model against measurements: targets files, calibration and the seed reproduction
(docs/fidelity.md)."""
