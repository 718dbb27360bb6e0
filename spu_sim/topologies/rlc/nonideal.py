"""Non-idealities of the RLC unit-cell SPU: cell-capacitor quantisation, tolerance/mismatch, temperature
(see ``apply_rlc_nonidealities``)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ...errors import DesignError
from ...parts.element_values import check_tolerance_draw, element_errors, quantize_grid, temperature_factor
from .config import RlcCircuitConfig
from .design import RlcDesign, maxwell_matrix


MAX_BANK_BITS = 16   # bank mismatch is drawn for this many bits, so bit k's error does not depend on `bits`


def rlc_knobs_default(c: RlcCircuitConfig) -> bool:
    """True when no non-ideality that applies to the rlc topology is set."""
    tol, tmp = c.tolerance, c.temperature
    return (tol.global_rel == 0 and tol.local_rel == 0 and c.quantization.c_bits is None
            and (tmp.temp_c == tmp.tnom_c or (tmp.r_tc1_per_k == 0 and tmp.c_tc1_per_k == 0 and tmp.l_tc1_per_k == 0)))


def apply_rlc_nonidealities(design: RlcDesign, c: RlcCircuitConfig) -> RlcDesign:
    """The realised RLC design: the nominal one itself when every knob is at its default.

    Order per element (as for the op-amp topology): programmed value -> fab -> heat.

        1. quantisation  the trimmed cell capacitor C_i -> round(C_i / lsb) lsb, lsb = c_cell_farad / 2^(c_bits - 1)
                         (circuit.quantization.c_bits: the cell capacitor is a programmable bank too; the coupling
                         banks are quantised by circuit.rlc.bits already, ideal coupling capacitors stay exact)
        2. tolerance     every C_i, L_i, R_i, ideal coupling capacitor C_ij and bank capacitor (bit k of bank i-j)
                         times (1 + g_kind)(1 + l_element), spu_sim.parts.element_values.element_errors with groups
                         CCELL, CK, CB (kind C), LCELL (kind L), RCELL (kind R), seeded by circuit.tolerance.seed
        3. temperature   C (1 + c_tc1 dT), L (1 + l_tc1 dT), R (1 + r_tc1 dT); parasitic capacitances,
                         switches and the noise voltage stay nominal.

    The design's choices made from nominal values stay: gamma, s_x, the bank codes, the compensation trim and
    the noise voltage e_n. The realised Maxwell matrix is rebuilt from the realised capacitors (the grounded
    load of an off bit uses its realised value); with mismatched R the cells' noise temperatures differ
    (kT_i = e_n^2 h / (2 R_i): the filesource voltage is common), so the stationary covariance is the Lyapunov
    solution of realized_sde() rather than kT Cm^-1.
    """
    if rlc_knobs_default(c):
        return design
    q, tol, tmp = c.quantization, c.tolerance, c.temperature
    d, bits = design.d, design.bits
    notes: dict[str, object] = {}
    c_cell = np.array(design.c_cell_farad, dtype=float)
    c_ck = np.array(design.c_coupling_farad, dtype=float)
    l_each = np.full(d, design.l_henry)
    r_each = np.full(d, design.r_ohm)
    switched = design.coupling == "switched"
    c_bank = c.rlc.c_unit_farad * 2.0 ** np.arange(bits)[None, None, :] * np.ones((d, d, 1)) if switched else None
    if q.c_bits is not None:
        lsb = c.rlc.c_cell_farad / 2 ** (q.c_bits - 1)
        c_cell = quantize_grid(c_cell, lsb)
        notes.update(c_bits=q.c_bits, c_cell_lsb_farad=lsb)
    if tol.global_rel or tol.local_rel:
        gr, lr, s = tol.global_rel, tol.local_rel, tol.seed
        c_cell = c_cell * element_errors(s, "CCELL", (d,), gr, lr, kind="C")
        l_each = l_each * element_errors(s, "LCELL", (d,), gr, lr, kind="L")
        r_each = r_each * element_errors(s, "RCELL", (d,), gr, lr, kind="R")
        if switched:
            c_bank = c_bank * element_errors(s, "CB", (d, d, MAX_BANK_BITS), gr, lr, kind="C")[:, :, :bits]
        else:
            f = np.triu(element_errors(s, "CK", (d, d), gr, lr, kind="C"), 1)
            c_ck = c_ck * (f + f.T)
        check_tolerance_draw(tol, **{"a cell capacitor": np.where(design.c_cell_farad > 0, c_cell, np.inf),
                                     "an inductor": l_each, "a cell resistor": r_each,
                                     "a coupling capacitor": np.where(design.c_coupling_farad > 0, c_ck, np.inf),
                                     "a bank capacitor": np.inf if c_bank is None else c_bank})
        notes.update(tolerance_global_rel=gr, tolerance_local_rel=lr, tolerance_seed=s)
    fc = temperature_factor(tmp.c_tc1_per_k, tmp.temp_c, tmp.tnom_c)
    fl = temperature_factor(tmp.l_tc1_per_k, tmp.temp_c, tmp.tnom_c)
    fr = temperature_factor(tmp.r_tc1_per_k, tmp.temp_c, tmp.tnom_c)
    if (fc, fl, fr) != (1.0, 1.0, 1.0):
        c_cell, c_ck, l_each, r_each = c_cell * fc, c_ck * fc, l_each * fl, r_each * fr
        c_bank = None if c_bank is None else c_bank * fc
        notes.update(temp_c=tmp.temp_c, c_factor=fc, l_factor=fl, r_factor=fr)
    if switched:
        c_ck, load = _bank_capacitances(design.code, c_bank, design.c_parasitic_farad)
    else:
        load = np.zeros(d)
    cm_real = maxwell_matrix(c_cell + load, c_ck)
    try:
        np.linalg.cholesky(cm_real)
    except np.linalg.LinAlgError:
        raise DesignError("the realised (non-ideal) capacitance matrix is not positive definite; lower "
                          "circuit.tolerance or add circuit.quantization.c_bits") from None
    return dataclasses.replace(design, c_cell_farad=c_cell, c_coupling_farad=c_ck, c_load_farad=load,
                               cm_realized_farad=cm_real, c_bank_farad=c_bank, l_each_henry=l_each,
                               r_each_ohm=r_each, notes=notes)


def _bank_capacitances(code: np.ndarray, c_bank: np.ndarray, c_par: float) -> tuple[np.ndarray, np.ndarray]:
    """realized_capacitances with per-bit capacitor values c_bank (d, d, bits) (upper triangle used)."""
    d, bits = code.shape[0], c_bank.shape[2]
    cc = np.zeros((d, d))
    load = np.zeros(d)
    for i in range(d):
        for j in range(i + 1, d):
            on = ((int(code[i, j]) >> np.arange(bits)) & 1).astype(bool)
            cc[i, j] = cc[j, i] = c_bank[i, j, on].sum()
            load[j] += c_par * on.sum()
            off = c_bank[i, j, ~on]
            if c_par > 0:
                load[i] += float(np.sum(off * c_par / (off + c_par)))
    return cc, load
