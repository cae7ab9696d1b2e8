"""Histogram files (``hist/<point_id>.npz``): the raw, mergeable histograms of one point.

A file holds all or some chunks of a point: ``counts[row, bucket]`` (int64), the exact per-chunk
sums, the resolved parameters (exact YAML) and their hashes. It is the source of truth of an
output folder: every table, ``.hgrm`` file and figure is rendered from it
(:mod:`mcsmp.sweeps.render`). Written atomically.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..config import Params, apply_override, build_params, raw_from_dict
from ..errors import UserError
from ..kernels import codes as K
from ..sim.engine import CHUNK_FANOUTS, PointResult
from ..sim.model import compile_model, policy_rows
from .atomic import atomic_open

__all__ = ["HIST_DIR", "HIST_FORMAT", "HistInfo", "hist_info", "hist_path", "load_hist", "row_names", "save_hist"]

HIST_FORMAT = 1
HIST_DIR = "hist"


def hist_path(outdir: str | Path, point_id: str) -> Path:
    return Path(outdir) / HIST_DIR / f"{point_id}.npz"


def row_names(params: Params, n_groups: int, n_strata: int = 1) -> list[str]:
    """A name for every histogram row (for readers of the ``.npz`` without mcsmp); with strata,
    stratum 0's rows carry the plain names and stratum ``s``'s the prefix ``stratum<s>/``."""
    names = list(K.FIXED_HISTS)
    n_pol = len(params.policies)
    for g in range(n_groups):
        for i, pol in enumerate(params.policies):
            p_row, h_row = policy_rows(g, i, n_pol)
            assert p_row == len(names) and h_row == p_row + 1
            names += [f"{metric}/{pol}/group{g}" for metric in K.POLICY_HISTS]
    return names + [f"stratum{s}/{name}" for s in range(1, n_strata) for name in names]


def save_hist(path: str | Path, result: PointResult, base_dir: str | Path | None = None) -> None:
    """Write ``result`` (all or some chunks of a point) to ``path`` atomically (``.npz``).

    Arrays: ``counts[row, bucket]`` (int64), ``chunks`` with their ``chunk_sums[chunk, row]`` (exact
    per-chunk sums, added in chunk order for means), ``chunk_counts[chunk, row]`` (values recorded
    per chunk, for the batch-means interval of means) and ``chunk_fanouts``, ``wait_tail_mean``,
    ``edges`` (bucket edges in ns), ``row_names``, ``params_yaml`` (the resolved parameters, exact),
    their ``params_hash`` and ``model_hash``, ``precision_bits``, ``stratum_probabilities`` (the
    exact ``P(s)`` of each stratum's block of rows; ``[1.0]`` when crude).
    """
    params, model = result.params, result.model
    chunks = sorted(result.chunk_sums)
    sums = (
        np.stack([np.asarray(result.chunk_sums[c], dtype=np.float64) for c in chunks])
        if chunks
        else np.zeros((0, model.n_hists))
    )
    arrays = {
        "format": np.int64(HIST_FORMAT),
        "counts": np.asarray(result.counts, dtype=np.int64),
        "chunks": np.asarray(chunks, dtype=np.int64),
        "chunk_sums": sums,
        "chunk_fanouts": np.asarray([result.chunk_fanouts[c] for c in chunks], dtype=np.int64),
        "wait_tail_mean": np.float64(result.wait_tail_mean),
        "seconds": np.float64(result.seconds),
        "precision_bits": np.int64(model.layout.precision_bits),
        "edges": model.layout.edges,
        "row_names": np.asarray(row_names(params, model.n_groups, model.rare.n_strata)),
        "stratum_probabilities": np.asarray(model.rare.probs, dtype=np.float64),
        "params_yaml": np.str_(yaml.safe_dump(params.resolved, sort_keys=False, allow_unicode=True)),
        "params_hash": np.str_(params.params_hash),
        "model_hash": np.str_(params.model_hash),
        "base_dir": np.str_(str(base_dir) if base_dir else ""),
        "chunk_fanouts_max": np.int64(CHUNK_FANOUTS),
    }
    if chunks and all(c in result.chunk_counts for c in chunks):
        arrays["chunk_counts"] = np.stack([np.asarray(result.chunk_counts[c], dtype=np.int64) for c in chunks])
    with atomic_open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


@dataclass(frozen=True)
class HistInfo:
    """The identity of a histogram file, read without loading its counts."""

    params_hash: str
    model_hash: str
    chunks: frozenset[int]


def hist_info(path: str | Path) -> HistInfo | None:
    """Identity of ``path``, or None when it is missing, unreadable or of another format."""
    try:
        # Our own file object: np.load leaks its handle when the zip is damaged.
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            if int(z["format"]) != HIST_FORMAT:
                return None
            return HistInfo(str(z["params_hash"]), str(z["model_hash"]), frozenset(int(c) for c in z["chunks"]))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def load_hist(path: str | Path, overrides: Sequence[tuple[str, Any, str]] = ()) -> PointResult:
    """Read a histogram file back into a :class:`PointResult`.

    ``overrides`` are ``(dotted key, value, origin)`` applied to the stored parameters before
    validation (``mcsmp report --quantiles``); they must not change the model.
    """
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise UserError(f"{path}: cannot read histogram file: {exc.strerror}") from None
    with f:
        try:
            z = np.load(f, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: cannot read histogram file: {exc}") from None
        try:
            if int(z["format"]) != HIST_FORMAT:
                raise UserError(f"{path}: histogram file format {int(z['format'])}, this mcsmp reads {HIST_FORMAT}")
            # Written by yaml.safe_dump: its own (C) safe loader reads it back exactly.
            data = yaml.load(str(z["params_yaml"]), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            base_dir = str(z["base_dir"]) or None
            stored_model_hash = str(z["model_hash"])
            counts = np.array(z["counts"], dtype=np.int64)
            chunks = [int(c) for c in z["chunks"]]
            sums = np.array(z["chunk_sums"], dtype=np.float64)
            fanouts = [int(x) for x in z["chunk_fanouts"]]
            wait_tail_mean = float(z["wait_tail_mean"])
            seconds = float(z["seconds"])
            chunk_counts = np.array(z["chunk_counts"], dtype=np.int64) if "chunk_counts" in z.files else None
        except KeyError as exc:
            raise UserError(f"{path}: not an mcsmp histogram file (no {exc.args[0]!r})") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, yaml.YAMLError) as exc:
            raise UserError(f"{path}: damaged histogram file: {exc}") from None
        finally:
            z.close()
    raw = raw_from_dict(data, f"{path}:params_yaml", base_dir)
    for key, value, origin in overrides:
        raw = apply_override(raw, key, value, origin=origin)
    params = build_params(raw)
    if params.model_hash != stored_model_hash:
        raise UserError(
            f"{path}: its parameters no longer give the model hash it was simulated with "
            f"({stored_model_hash[:10]} -> {params.model_hash[:10]}): the defaults changed since; "
            "use the mcsmp version named in meta.json, or simulate again"
        )
    model = compile_model(params)
    if counts.shape != (model.n_hists, model.layout.n_buckets):
        raise UserError(f"{path}: counts of shape {counts.shape}, expected {(model.n_hists, model.layout.n_buckets)}")
    return PointResult(
        params, model, counts, {c: sums[i] for i, c in enumerate(chunks)},
        {c: fanouts[i] for i, c in enumerate(chunks)}, wait_tail_mean, seconds, None, None,
        {} if chunk_counts is None or chunk_counts.shape != sums.shape
        else {c: chunk_counts[i] for i, c in enumerate(chunks)},
    )  # fmt: skip
