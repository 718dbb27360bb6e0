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
(posterior_logistic's sigmoid) give None here; the macromodel circuits get the whole process instead:

    sde = circuit_sde(topology, design, spec)     # LinearSDE (t in tau), first d states = the readouts; None: too big

The realised process of a linear circuit with macromodel op-amps (gain, GBW pole, offsets, r_out, c_in, wires: all
in the netlist) read from the same state-space model x' = M x + N u, u = [1, noise DACs, white currents]: with
y = C x the d readout voltages (C of rank d, no direct feed-through) and S the problem-unit scale, the states
z = T x, T = [S C; an orthonormal basis of C's null space], give dz/dt' = -K z + f + noise in tau with
K = -tau_s T M T^-1, f = tau_s T N_dc and D = tau_s T N_q diag(q) N_q^T T^T (noise DACs at the samples' low-frequency
intensity noise_v_rms^2 dt, the white currents at theirs). The first d states are the readouts, so the judge's
stationary mean and covariance are those of the circuit itself (exact for the linear netlist; e_n and 1/f are
left out as above). More than MAX_SDE_STATES states: None (the design keeps its quasi-static model).
"""

from __future__ import annotations

import dataclasses

import numpy as np

import scipy.linalg as sla

from ..circuit import VCCS, Capacitor, NoiseSource, ResistorArray, flatten
from ..engines.linear.model import build_model
from ..errors import BadInputError
from ..ideal import LinearSDE
from ..parts.intrinsic_noise import IntrinsicNoise, held_nodes, ideal_outputs, opamp_sites, white_currents
from ..parts.opamp import finite_gain_model
from .base import CircuitRequest, replace_keeping_cache


MAX_SDE_STATES = 600     # circuit_sde: the judge's Lyapunov solution is O(n^3) in the states


def _probe_model(topology, design, spec: IntrinsicNoise | None, max_states: int | None = None):
    """(model, white currents): the linear model of the noise-free .op circuit with the noise DACs present (at 0) and
    one unit current input AIQ<k> per white current of spec (module doc); model None when the linear model refuses
    an element (a nonlinear one) or the circuit has more than max_states capacitors and capacitive line nodes
    (each at most one state: checked before the model is built)."""
    d = design.d
    noise_u = np.zeros((3, d)) if getattr(design, "has_noise", False) else None     # the noise DACs' resistors too
    request = CircuitRequest(analyses=("op",), t_stop_s=design.tau_s, step_s=design.tau_s, reltol=1e-3,
                             noise_u=noise_u)
    circuit = topology.build_circuit(design, request)
    E = list(circuit.elements)
    flat = flatten(E, keep_external=True)   # the op-amp cores' elements too (as with_intrinsic_noise sees them)
    n_caps = sum(1 if isinstance(e, Capacitor) else 2 * e.r_ohm.size if isinstance(e, ResistorArray) and
                 e.c_wire_farad > 0 else 0 for e in flat)     # a wired array with capacitance: its line nodes
    if max_states is not None and n_caps > max_states:
        return None, []
    currents = white_currents(flat, spec, held_nodes(flat, ideal_outputs(E)), opamp_sites(E)) if spec is not None else []
    extra: list = []
    for k, (a, b, _q) in enumerate(currents, start=1):
        extra += [NoiseSource(f"AIQ{k}", f"iq{k}", "0", f"iq{k}.txt", np.zeros(3), 1.0),
                  VCCS(f"GIQ{k}", a, b, f"iq{k}", "0", 1.0)]
    probe = dataclasses.replace(circuit, elements=E + extra, analyses=[])
    try:
        return build_model(probe, saves=[f"v({n})" for n in circuit.readout_nodes]), currents
    except BadInputError:
        return None, currents


def _unit_scale(design) -> np.ndarray:
    """(d,) the linear part of design.to_problem_units (problem units per volt of each readout)."""
    d = design.d
    return np.asarray(design.to_problem_units(np.ones(d)), dtype=float) - np.asarray(
        design.to_problem_units(np.zeros(d)), dtype=float)


def circuit_sde(topology, design, spec: IntrinsicNoise | None) -> LinearSDE | None:
    """The realised process of the circuit as built, in tau and problem units, its first d states the readouts
    (module doc); None when the circuit has more than MAX_SDE_STATES states, a nonlinear element, a readout that is
    not a combination of states or a direct feed-through."""
    d = design.d
    if 2 * d > MAX_SDE_STATES:    # every variable's integrator has at least C_f and its op-amp's pole: too big, and
        return None               # the circuit is not built (its netlist header alone solves a dense eigenproblem)
    model, currents = _probe_model(topology, design, spec, MAX_SDE_STATES)
    if model is None or model.M.shape[0] > MAX_SDE_STATES:
        return None
    C, n = model.Cx, model.M.shape[0]
    if np.abs(model.Du).max(initial=0.0) > 1e-12 * np.abs(C).max(initial=1.0) or np.linalg.matrix_rank(C) < d:
        return None
    scale = _unit_scale(design)
    T = np.vstack([scale[:, None] * C, sla.null_space(C).T]) if n > d else scale[:, None] * C
    Tinv = np.linalg.inv(T)
    tau = design.tau_s
    cols, q = [], []
    for i, s in enumerate(model.noise):
        if s.name.startswith("AIQ"):
            cols.append(1 + i)
            q.append(currents[int(s.name[3:]) - 1][2])
        elif s.name.startswith("ANOISE"):       # a noise DAC: pre-emphasised samples of intensity v_rms^2 dt
            cols.append(1 + i)
            q.append(design.noise_v_rms ** 2 * design.noise_dt_tau * tau)
    TN = T @ model.N[:, cols] if cols else np.zeros((n, 0))
    D = tau * (TN * np.array(q)) @ TN.T
    return LinearSDE(-tau * T @ model.M @ Tinv, tau * T @ model.N[:, 0], 0.5 * (D + D.T))


def circuit_intrinsic_diffusion(topology, design, spec: IntrinsicNoise | None) -> np.ndarray | None:
    """(d, d) intrinsic white diffusion per tau in problem units (module doc); zeros when spec has no white current,
    None when the circuit is not one the construction is exact for (more states than readout nodes, or an element
    the linear model does not know)."""
    d = design.d
    if spec is None or not (spec.thermal or spec.in_a_per_rthz > 0):
        return np.zeros((d, d))
    model, currents = _probe_model(topology, design, spec)
    if model is None or model.M.shape[0] != d:
        return None
    cols = {s.name: 1 + i for i, s in enumerate(model.noise)}
    Nk = model.N[:, [cols[f"AIQ{k}"] for k in range(1, len(currents) + 1)]]
    q = np.array([c[2] for c in currents])
    CN = model.Cx @ Nk
    D_y = (CN * q) @ CN.T
    scale = _unit_scale(design)
    return design.tau_s * scale[:, None] * D_y * scale[None, :]


def with_intrinsic(topology, design, spec: IntrinsicNoise | None, linear: bool = True):
    """The design with ``intrinsic`` = spec and ``intrinsic_diffusion`` = circuit_intrinsic_diffusion, and with
    macromodel op-amps (design.macro) on a linear circuit (``linear``) ``netlist_sde`` = circuit_sde, the judge of
    the realised process (the design itself when spec is None and the op-amps are ideal)."""
    macro = linear and finite_gain_model(getattr(design, "macro", None)) is not None   # not a subcircuit op-amp
    if spec is None and not macro:
        return design
    if spec is not None:
        design = replace_keeping_cache(design, intrinsic=spec)
        design = replace_keeping_cache(design, intrinsic_diffusion=circuit_intrinsic_diffusion(topology, design, spec))
    if macro:
        design = replace_keeping_cache(design, netlist_sde=circuit_sde(topology, design, spec))
    return design
