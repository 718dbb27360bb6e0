"""Summaries of a sweep, rebuilt from its valid run records alone: summary.csv (one row per run of the
plan that has a record, in plan order), mitigation.csv (groups of K draws averaged) and summary.json
(counts, statistics, yield). Plots (spu_sim.sweep_plots) read these files and the names defined here.
"""

from __future__ import annotations

import csv
import io as _io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import io
from .records import read_record
from .spec import Sweep

SUMMARY_NAME = "summary.csv"
MITIGATION_NAME = "mitigation.csv"
SUMMARY_JSON = "summary.json"
# metrics reported first in summary.csv (others follow alphabetically)
METRIC_ORDER = ("mean_rel_err", "op_rel_err", "cov_rel_err", "mean_rel_err_vs_realized", "op_rel_err_vs_realized",
                "cov_rel_err_vs_realized", "matrix_rel_err")
# estimates averaged by the mitigation step, with the metric they feed
ESTIMATES = {"x_mean": "mean_rel_err", "x_op": "op_rel_err", "x_cov": "cov_rel_err"}
FIXED_COLUMNS = ("index", "run_id", "draw", "seed", "run_time_s", "status", "error")


def format_value(v: Any) -> Any:
    """A value as summary.csv spells it (floats by repr, nan/inf by name, lists and dicts as JSON)."""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else str(v))
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return "" if v is None else v


def write_csv(path: Path, header: list[str], rows: list[dict[str, Any]]) -> None:
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: format_value(row.get(k)) for k in header})
    io.atomic_write_text(path, buf.getvalue())


def _rel(err: np.ndarray, ref: np.ndarray) -> float:
    n = float(np.linalg.norm(ref))
    return float(np.linalg.norm(err) / n) if n > 0 else float("nan")


def mitigation_rows(sweep: Sweep, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Groups of K consecutive draws per grid point: error of the averaged estimate vs the single draws'.

    For each estimate e (x_mean, x_op, x_cov) of a group whose K runs are all ok:
    ``<metric>_single_mean`` = mean over the K runs of ||e_k - ref|| / ||ref|| and ``<metric>_averaged`` =
    ||mean_k e_k - ref|| / ||ref|| (ref: x* or the target's stationary covariance).
    """
    spec = sweep.spec
    if not spec.mitigation.enabled or spec.monte_carlo is None:
        return []
    k = spec.mitigation.group_size
    seed_keys = spec.monte_carlo.seed_keys
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for rec in records:
        point = tuple((key, json.dumps(v)) for key, v in rec["params"].items() if key not in seed_keys)
        groups.setdefault((point, rec["draw"] // k), []).append(rec)
    rows = []
    for (point, g), members in groups.items():
        if len(members) < k:
            continue
        row: dict[str, Any] = {key: json.loads(v) for key, v in point}
        row.update(group=g, group_size=k, n_ok=sum(m["status"] == "ok" for m in members))
        ok = [m for m in members if m["status"] == "ok" and m.get("estimates")]
        if len(ok) == k:
            est = ok[0]["estimates"]
            for name, metric in ESTIMATES.items():
                if name not in est:
                    continue
                ref = np.array(est["x_star"] if name != "x_cov" else est["cov_target"], dtype=float)
                avg = np.mean([np.array(m["estimates"][name], dtype=float) for m in ok], axis=0)
                singles = [m["metrics"].get(metric, _rel(np.array(m["estimates"][name], dtype=float) - ref, ref))
                           for m in ok]
                row[f"{metric}_single_mean"] = float(np.mean(singles))
                row[f"{metric}_averaged"] = _rel(avg - ref, ref)
        rows.append(row)
    rows.sort(key=lambda r: (json.dumps([r.get(key) for key in sweep.grid_keys]), r["group"]))
    return rows


def stats(values: list[float | None]) -> dict[str, float]:
    """n, mean, median, p95 and max of the finite values."""
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "mean": float(v.mean()), "median": float(np.median(v)),
            "p95": float(np.percentile(v, 95)), "max": float(v.max())}


def _fraction_below(values: list[float | None], threshold: float, n_all: int) -> float:
    return sum(1 for v in values if v is not None and v <= threshold) / n_all


def write_summary(sweep: Sweep, out: Path) -> Path:
    """summary.csv (one row per run of the plan with a valid record), mitigation.csv, summary.json."""
    out = Path(out)
    records = [rec for rec, _ in (read_record(out, run) for run in sweep.runs) if rec is not None]
    param_keys = sweep.param_keys
    names = {k for r in records for k in r.get("metrics", {})} - set(FIXED_COLUMNS) - set(param_keys)
    metrics = [m for m in METRIC_ORDER if m in names] + sorted(names - set(METRIC_ORDER))
    header = ["index", "run_id", *param_keys, "draw", "seed", *metrics, "run_time_s", "status", "error"]
    rows = []
    for rec in records:
        row = {**{k: v for k, v in rec.get("metrics", {}).items() if k in names},
               **{k: rec["params"].get(k) for k in param_keys}}
        row.update({k: rec.get(k) for k in FIXED_COLUMNS})
        rows.append(row)
    summary = out / SUMMARY_NAME
    write_csv(summary, header, rows)

    spec = sweep.spec
    info: dict[str, Any] = {"config": str(sweep.config_path), "runs_planned": len(sweep.runs),
                            "runs_stored": len(records), "ok": sum(r["status"] == "ok" for r in records),
                            "failed": sum(r["status"] != "ok" for r in records), "metric": spec.metric,
                            "run_time_s": stats([r.get("run_time_s") for r in records])}
    info["metric_stats"] = {m: stats([r.get(m) for r in rows]) for m in metrics}
    if spec.threshold is not None and records:
        ok_values = [r.get(spec.metric) for r in rows if r["status"] == "ok"]
        info["threshold"] = spec.threshold
        info["yield"] = _fraction_below(ok_values, spec.threshold, len(sweep.runs))
    mit = mitigation_rows(sweep, records)
    if mit:
        err_cols = sorted({c for r in mit for c in r if c.endswith(("_averaged", "_single_mean"))})
        write_csv(out / MITIGATION_NAME, [*sweep.grid_keys, "group", "group_size", "n_ok", *err_cols], mit)
        info["mitigation"] = {"group_size": spec.mitigation.group_size,
                              **{c: stats([r.get(c) for r in mit]) for c in err_cols}}
        col = f"{spec.metric}_averaged"
        if spec.threshold is not None and col in err_cols:
            info["mitigation"]["yield"] = _fraction_below([r.get(col) for r in mit], spec.threshold, len(mit))
    io.atomic_write_json(out / SUMMARY_JSON, info)
    return summary
