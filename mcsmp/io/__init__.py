"""Files and text: atomic writes, histogram files, ``.hgrm``, ``meta.json``, CSV and text tables,
the text report and JSON. One writer of each kind for the whole package."""
