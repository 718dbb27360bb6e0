"""The exact discrete-time process of the switched-capacitor integrator network (one map per clock period).

Per period n (phase 1 then phase 2; see spu_sim.topologies.opamp_sc.design for the charge balance), with
H+ = C+ / C_f (delay-free inverting branches, A_ij > 0, the diagonal included), H- = C- / C_f (delaying
non-inverting branches, A_ij < 0), row i divided by integrator i's C_f:

    phase 1  (sample)    z1 = [V[n]; H- V[n] + e1]              Phi_1 = [I; H-]     (2d x d)
    phase 2  (transfer)  (I + H+) V[n+1] = V[n] + (H- V[n] + e1) + c + e2 + w
                                                                 Phi_2 = (I + H+)^-1 [I, I]
    period               V[n+1] = Phi V[n] + B (c + eps_n),    Phi = Phi_2 Phi_1 = (I + H+)^-1 (I + H-),
                                                                 B = (I + H+)^-1

e1, e2: the kT/C charge errors left by phase 1 and phase 2 (per integrator, in volts on C_f: variance
kT sum_branches C / C_f^2 each, independent); w: the injected noise DAC (variance (C_n u_rms / C_f)^2);
c: the b-DAC charge. Per-period noise covariance Q = B (Q_1 + Q_2 + Q_w) B^T.

Stationary law: mean m = (I - Phi)^-1 B c (= A_realized^-1 b_realized exactly: (I + H+ - I - H-) m = c);
covariance S = Phi S Phi^T + Q (discrete Lyapunov, scipy.linalg.solve_discrete_lyapunov).

Effective continuous-time process: K = -logm(Phi) / h, f = K m, D = K S + S K^T. The continuous OU with
(K, f, D) sampled every h has exactly the transition Phi and the conditional covariance S - Phi S Phi^T = Q,
so it is the process the circuit realises on its clock grid (the judge that compare's *_vs_realized uses);
K is the effective A and kappa_eff = tr(D) / (2 d) the effective noise level.

Sample mean of N consecutive stationary states: Cov = [(I - Phi)^-1 S + S (I - Phi)^-T - S] / N (exact sum
of the autocovariances Phi^k S, for large N).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg as sla

from ...errors import DesignError
from ...ideal import LinearSDE


class ScProcess(NamedTuple):
    """x[n+1] = Phi x[n] + g + B eps_n, Cov(B eps) = Q; h: the period in tau. Problem units."""

    Phi: np.ndarray
    g: np.ndarray
    Q: np.ndarray
    h: float


def period_map(H_plus: np.ndarray, H_minus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Phi, B) = ((I + H+)^-1 (I + H-), (I + H+)^-1): the product of the phase-1 and phase-2 maps."""
    d = H_plus.shape[0]
    Bm = np.linalg.inv(np.eye(d) + H_plus)
    phi1 = np.vstack([np.eye(d), H_minus])
    phi2 = Bm @ np.hstack([np.eye(d), np.eye(d)])
    return phi2 @ phi1, Bm


def sc_process(H_plus: np.ndarray, H_minus: np.ndarray, c: np.ndarray, q_phase1: np.ndarray,
               q_phase2: np.ndarray, q_injected: np.ndarray, h: float) -> ScProcess:
    """The per-period process from the phase maps and the per-phase noise covariances (all (d, d))."""
    Phi, Bm = period_map(H_plus, H_minus)
    Q = Bm @ (q_phase1 + q_phase2 + q_injected) @ Bm.T
    return ScProcess(Phi, Bm @ c, 0.5 * (Q + Q.T), float(h))


def stationary_mean(p: ScProcess) -> np.ndarray:
    return np.linalg.solve(np.eye(p.Phi.shape[0]) - p.Phi, p.g)


def stationary_cov(p: ScProcess) -> np.ndarray:
    """S = Phi S Phi^T + Q."""
    S = sla.solve_discrete_lyapunov(p.Phi, p.Q)
    return 0.5 * (S + S.T)


def spectral_radius(p: ScProcess) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(p.Phi))))


def effective_drift(p: ScProcess) -> np.ndarray:
    """K = -logm(Phi) / h, refused (DesignError) when the map is unstable or alternates."""
    lam = np.linalg.eigvals(p.Phi)
    if np.any(np.abs(lam) >= 1.0):
        raise DesignError(f"the clocked map is unstable (|eigenvalue| = {np.abs(lam).max():.3g} >= 1); raise "
                          "circuit.sc.f_clk_tau")
    if np.any((np.abs(lam.imag) < 1e-12) & (lam.real <= 0)):
        raise DesignError("the clocked map has a negative real eigenvalue (it alternates every period, no "
                          "continuous-time equivalent); raise circuit.sc.f_clk_tau")
    return -np.real(sla.logm(p.Phi)) / p.h


def effective_sde(p: ScProcess) -> LinearSDE:
    """The continuous-time OU whose samples every h are exactly this process (module doc)."""
    K = effective_drift(p)
    m = stationary_mean(p)
    S = stationary_cov(p)
    D = K @ S + S @ K.T
    return LinearSDE(K, K @ m, 0.5 * (D + D.T))


def sample_mean_cov(p: ScProcess, n: int) -> np.ndarray:
    """Covariance of the average of n consecutive stationary states (module doc)."""
    S = stationary_cov(p)
    d = S.shape[0]
    X = np.linalg.solve(np.eye(d) - p.Phi, S)
    return (X + X.T - S) / float(n)


def euler_first_order_cov(A: np.ndarray, A_plus: np.ndarray, kappa: float) -> np.ndarray:
    """First-order term S1 of S = kappa A^-1 + h S1 + O(h^2) for this map with injected noise 2 kappa h I.

    Expanding Phi = I - h A + h^2 A+ A + O(h^3), B = I - h A+ + O(h^2) in S = Phi S Phi^T + B 2 kappa h B^T
    at order h^2, with S0 the continuous Lyapunov solution (A S0 + S0 A^T = 2 kappa I):
        A S1 + S1 A^T = A S0 A^T + A+ A S0 + S0 (A+ A)^T - 2 kappa (A+ + A+^T)
    (for symmetric A the right-hand side is -kappa |A|, elementwise absolute values).
    """
    S0 = sla.solve_continuous_lyapunov(A, 2.0 * kappa * np.eye(A.shape[0]))
    P = A_plus @ A
    rhs = A @ S0 @ A.T + P @ S0 + S0 @ P.T - 2.0 * kappa * (A_plus + A_plus.T)
    return sla.solve_continuous_lyapunov(A, rhs)
