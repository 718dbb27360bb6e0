"""The intrinsic white diffusion of any linear topology, read from its built circuit (issue 20 part 4): the judge of
``*_vs_realized`` with the full diffusion (injected + intrinsic) where the element values alone do not give it in
closed form (opamp_factored, posterior_gaussian; topology opamp has its own closed form, OpampDesign).

    D_int = circuit_intrinsic_diffusion(topology, design, spec)     # (d, d) per tau, problem units; None: not modelled

Construction. The white currents of spec (parts.intrinsic_noise.white_currents: the thermal currents aggregated per
free node, one per resistor with both ends free, op-amp i_n at the inverting inputs; two-sided intensities q_k)
are added to the noise-free circuit as unit current inputs (a NoiseSource driving a 1 S VCCS from a_k into b_k).
The linear engine's state-space model x' = M x + N u (engines.linear.model) gives the column n_k of each input.
When the circuit's states are exactly the d readout node voltages y = C x (C invertible: ideal op-amps, whose
summers are static), y' = C M x + C N u, so y's white diffusion is C (sum_k q_k n_k n_k^T) C^T (V^2 / s) -- exact,
the same linear algebra the transient integrates. Problem units per tau: x = S y (S = to_problem_units' linear
part, diagonal), t = tau_s t', so D = tau_s S D_y S. Not included, as in OpampDesign.intrinsic_diffusion: e_n
(it enters as a voltage, with direct feed-through to the outputs) and 1/f noise (not white). Circuits with more
states than readout nodes (op-amp macromodels: the op-amps' internal poles are states) or nonlinear elements
(posterior_logistic's sigmoid) give None: their intrinsic noise is in the transient but not in the judge.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..circuit import VCCS, NoiseSource
from ..engines.linear.model import build_model
from ..errors import BadInputError
from ..parts.intrinsic_noise import IntrinsicNoise, held_nodes, opamp_sites, white_currents
from .base import CircuitRequest, replace_keeping_cache


def circuit_intrinsic_diffusion(topology, design, spec: IntrinsicNoise | None) -> np.ndarray | None:
    """(d, d) intrinsic white diffusion per tau in problem units (module doc); zeros when spec has no white current,
    None when the circuit is not one the construction is exact for (more states than readout nodes, or an element
    the linear model does not know)."""
    d = design.d
    if spec is None or not (spec.thermal or spec.in_a_per_rthz > 0):
        return np.zeros((d, d))
    noise_u = np.zeros((3, d)) if getattr(design, "has_noise", False) else None     # the noise DACs' resistors too
    request = CircuitRequest(analyses=("op",), t_stop_s=design.tau_s, step_s=design.tau_s, reltol=1e-3,
                             noise_u=noise_u)
    circuit = topology.build_circuit(design, request)
    E = list(circuit.elements)
    currents = white_currents(E, spec, held_nodes(E), opamp_sites(E))
    extra: list = []
    for k, (a, b, _q) in enumerate(currents, start=1):
        extra += [NoiseSource(f"AIQ{k}", f"iq{k}", "0", f"iq{k}.txt", np.zeros(3), 1.0),
                  VCCS(f"GIQ{k}", a, b, f"iq{k}", "0", 1.0)]
    nodes = list(circuit.readout_nodes)
    probe = dataclasses.replace(circuit, elements=E + extra, analyses=[])
    try:
        model = build_model(probe, saves=[f"v({n})" for n in nodes])
    except BadInputError:
        return None
    if model.M.shape[0] != d:
        return None
    cols = {s.name: 1 + i for i, s in enumerate(model.noise)}
    Nk = model.N[:, [cols[f"AIQ{k}"] for k in range(1, len(currents) + 1)]]
    q = np.array([c[2] for c in currents])
    CN = model.Cx @ Nk
    D_y = (CN * q) @ CN.T
    scale = np.asarray(design.to_problem_units(np.ones(d)), dtype=float) - np.asarray(
        design.to_problem_units(np.zeros(d)), dtype=float)
    return design.tau_s * scale[:, None] * D_y * scale[None, :]


def with_intrinsic(topology, design, spec: IntrinsicNoise | None):
    """The design with ``intrinsic`` = spec and ``intrinsic_diffusion`` = circuit_intrinsic_diffusion (the design
    itself when spec is None: every intrinsic source off)."""
    if spec is None:
        return design
    design = replace_keeping_cache(design, intrinsic=spec)
    return replace_keeping_cache(design, intrinsic_diffusion=circuit_intrinsic_diffusion(topology, design, spec))
