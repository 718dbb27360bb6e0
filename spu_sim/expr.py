"""Behavioural-source expressions of the circuit description (re-exported by spu_sim.circuit).

Expressions are trees (``Expr``) built with ``num``, ``volt``, ``add``, ``mul``, ``div`` and ``call`` (functions in
EXPR_FUNCS): only numbers and checked node names reach a netlist (spu_sim.spice.format_expr), never text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .circuit_names import check_name


EXPR_FUNCS = ("exp", "tanh", "min", "max", "abs")


@dataclass(frozen=True)
class Expr:
    """A behavioural-source expression: op "num" (args (x,)), "v" (args (node,) or (node, ref)), "+", "*",
    "/" (two args) or a function of EXPR_FUNCS applied to its args (Expr each)."""

    op: str
    args: tuple

    def __post_init__(self) -> None:
        if self.op == "num":
            if len(self.args) != 1 or not np.isfinite(float(self.args[0])):
                raise ValueError("num: one finite number")
        elif self.op == "v":
            if len(self.args) not in (1, 2):
                raise ValueError("v: a node and an optional reference node")
            for n in self.args:
                check_name(n)
        elif self.op in ("+", "*", "/") or self.op in EXPR_FUNCS:
            if not self.args or not all(isinstance(a, Expr) for a in self.args):
                raise ValueError(f"{self.op}: arguments must be expressions")
            if self.op == "/" and len(self.args) != 2:
                raise ValueError("/: exactly two arguments")
        else:
            raise ValueError(f"{self.op!r} is not an expression operator")


def num(x: float) -> Expr:
    return Expr("num", (float(x),))


def volt(node: str, ref: str | None = None) -> Expr:
    return Expr("v", (node,) if ref is None else (node, ref))


def add(*terms: Expr) -> Expr:
    return Expr("+", tuple(terms))


def mul(*factors: Expr) -> Expr:
    return Expr("*", tuple(factors))


def div(a: Expr, b: Expr) -> Expr:
    return Expr("/", (a, b))


def call(fn: str, *args: Expr) -> Expr:
    return Expr(fn, tuple(args))
