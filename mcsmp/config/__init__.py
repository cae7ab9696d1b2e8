"""Configuration: YAML in, frozen :class:`Params` out (docs/model.md §8, docs/parameters.md).

- :mod:`.yamlio`: the safe YAML loader that keeps every key's line and column;
- :mod:`.schema`: the frozen dataclasses of one sweep point;
- :mod:`.build`: merging over ``defaults.yaml``, ``--set`` overrides and validation;
- :mod:`.points`: sweep expansion (``sweep.grid`` × ``sweep.zip`` × ``--set``).
"""

from .build import RawParams, apply_override, build_params, load_raw, raw_from_dict
from .points import Point, expand, parse_set
from .schema import POLICIES, Params

__all__ = [
    "POLICIES",
    "Params",
    "Point",
    "RawParams",
    "apply_override",
    "build_params",
    "expand",
    "load_raw",
    "parse_set",
    "raw_from_dict",
]
