"""Layer-wise view of the classifiers: a deep MLP, and the per-layer statistics K-FAC needs.

Every model of the loop is a stack of dense layers on one flat parameter vector theta,

    h_0 = x,   s_l = h_{l-1} W_l + c_l,   h_l = act(s_l) (l < L),   z = s_L,
    theta = [W_1 (n_in_1, n_out_1) row-major, c_1, W_2, c_2, ..., W_L, c_L],

so ``LogReg`` is the stack with no hidden layer and ``MLP(hidden=h)`` the stack with one; ``as_layers``
returns the equivalent ``DeepMLP`` of either (same theta layout), and ``DeepMLP(hidden=[h1, h2, ...])`` is
the deeper model (``model.hidden: [32, 32]`` in a config).

K-FAC (Martens & Grosse 2015; physics.md section 9) works per layer on the homogeneous weight matrix
Wbar_l = [W_l; c_l] of shape (n_in + 1, n_out) -- the bias as a weight on a constant input 1. With
abar = [h_{l-1}, 1] and ds the back-propagated cotangent of the pre-activation s_l, the layer's curvature
block is approximated by a Kronecker product of

    A_l = (1/n) sum_i abar_i abar_i^T                        (n_in + 1, n_in + 1)
    G_l = (1/n) sum_i sum_k ds_ik ds_ik^T                      (n_out, n_out)

``ggn``: ds_ik is the back-propagation of column k of the loss-Hessian factor L_i (H_L,i = L_i L_i^T),
so that for one example A_l (x) G_l is exactly the layer's GGN block (tested); ``empirical_fisher``: one
cotangent per example, ds_i from p_i - e_{y_i}. In the flat vector the block's row-major order is
vec(Wbar) = theta[index], index of shape (n_in + 1, n_out), and the block is A (x) G in that order.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spu_sim.errors import BadInputError
from spu_sim.train import models


class KroneckerLayer(NamedTuple):
    """One layer's K-FAC statistics of a mini-batch.

    index: int array (n_in + 1, n_out): theta[index] is Wbar (the last row the bias);
    a_cov: A = E[abar abar^T], (n_in + 1, n_in + 1); g_cov: G, (n_out, n_out).
    """

    index: np.ndarray
    a_cov: np.ndarray
    g_cov: np.ndarray


class DeepMLP:
    """Dense layers of widths ``hidden`` (a list; may be empty) with ``activation`` between them."""

    def __init__(self, d_in: int, hidden: list[int], n_classes: int, activation: str = "tanh"):
        if activation not in models.ACTIVATIONS:
            raise BadInputError(f"{activation!r} is not an activation; choose one of: "
                                f"{', '.join(models.ACTIVATIONS)}")
        self.d_in, self.d_z, self.activation = int(d_in), int(n_classes), activation
        self.hidden = [int(h) for h in hidden]
        widths = [self.d_in, *self.hidden, self.d_z]
        self.shapes = list(zip(widths[:-1], widths[1:]))
        self.sizes = [s for n_in, n_out in self.shapes for s in (n_in * n_out, n_out)]
        self.n_params = int(sum(self.sizes))
        offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        self.index = []
        for l, (n_in, n_out) in enumerate(self.shapes):
            o = int(offsets[2 * l])
            w = o + np.arange(n_in * n_out).reshape(n_in, n_out)
            self.index.append(np.vstack([w, o + n_in * n_out + np.arange(n_out)[None, :]]))

    def init(self, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
        """Weights N(0, scale^2 / fan_in) drawn layer by layer, zero biases (MLP's scheme)."""
        parts = []
        for n_in, n_out in self.shapes:
            parts += [scale * rng.standard_normal(n_in * n_out) / np.sqrt(n_in), np.zeros(n_out)]
        return np.concatenate(parts)

    def weights(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(theta[ix[:-1]], theta[ix[-1]]) for ix in self.index]

    def _act(self, s):
        if self.activation == "tanh":
            h = np.tanh(s)
            return h, 1.0 - h * h
        return np.maximum(s, 0.0), (s > 0).astype(float)

    def forward(self, theta: np.ndarray, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        """(inputs h_{l-1} of every layer, activation derivatives act'(s_l) of the hidden layers, logits z)."""
        ins, ders, h = [], [], x
        wb = self.weights(theta)
        for l, (w, c) in enumerate(wb):
            ins.append(h)
            s = h @ w + c
            if l < len(wb) - 1:
                h, d = self._act(s)
                ders.append(d)
            else:
                h = s
        return ins, ders, h

    def cotangents(self, theta: np.ndarray, ders: list[np.ndarray], dz: np.ndarray,
                   repeat: int = 1) -> list[np.ndarray]:
        """Back-propagated cotangents ds_l of every layer for output cotangents dz (rows); each example's
        derivative row is used for ``repeat`` consecutive rows of dz."""
        wb = self.weights(theta)
        ds = [dz]
        for l in range(len(wb) - 1, 0, -1):
            ds.append((ds[-1] @ wb[l][0].T) * np.repeat(ders[l - 1], repeat, axis=0))
        return ds[::-1]

    def logits(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        return self.forward(theta, x)[2]

    def backprop(self, theta: np.ndarray, x: np.ndarray, dz: np.ndarray) -> np.ndarray:
        """sum_i J_i^T dz_i, shape (N,)."""
        ins, ders, _ = self.forward(theta, x)
        out = np.empty(self.n_params)
        for ix, h, ds in zip(self.index, ins, self.cotangents(theta, ders, dz)):
            out[ix[:-1]] = h.T @ ds
            out[ix[-1]] = ds.sum(axis=0)
        return out

    def jacobian(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Per-example Jacobians dz_i/dtheta, shape (n, d_z, N): back-propagate every output unit."""
        ins, ders, _ = self.forward(theta, x)
        n = x.shape[0]
        dz = np.tile(np.eye(self.d_z), (n, 1))  # row (i, c) = e_c
        out = np.empty((n, self.d_z, self.n_params))
        for ix, h, ds in zip(self.index, ins, self.cotangents(theta, ders, dz, repeat=self.d_z)):
            ds = ds.reshape(n, self.d_z, -1)
            out[:, :, ix[:-1].ravel()] = np.einsum("ni,ncj->ncij", h, ds).reshape(n, self.d_z, -1)
            out[:, :, ix[-1]] = ds
        return out


def as_layers(model) -> DeepMLP:
    """The ``DeepMLP`` with the same theta layout and function as ``model`` (LogReg, MLP or DeepMLP)."""
    if isinstance(model, DeepMLP):
        return model
    if isinstance(model, models.LogReg):
        return DeepMLP(model.d_in, [], model.d_z)
    if isinstance(model, models.MLP):
        return DeepMLP(model.d_in, [model.hidden], model.d_z, model.activation)
    raise BadInputError(f"K-FAC needs a model of dense layers (logreg, mlp), not {type(model).__name__}")


def kronecker_layers(model, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                     curvature: str = "ggn") -> list[KroneckerLayer]:
    """The per-layer K-FAC statistics of a mini-batch (module docstring); cost O(n d_z sum_l n_in n_out
    + n sum_l (n_in^2 + d_z n_out^2))."""
    net = as_layers(model)
    ins, ders, z = net.forward(theta, x)
    n = x.shape[0]
    p = models.softmax(z)
    if curvature == "ggn":
        lf = models.loss_hessian_factor(p)  # (n, d_z, d_z); H_L,i = sum_k L_i[:, k] L_i[:, k]^T
        dz, rep = lf.transpose(0, 2, 1).reshape(n * net.d_z, net.d_z), net.d_z
    elif curvature == "empirical_fisher":
        dz, rep = p.copy(), 1
        dz[np.arange(n), y] -= 1.0
    else:
        raise BadInputError(f"{curvature!r} is not a curvature; choose one of: {', '.join(models.CURVATURES)}")
    out = []
    for ix, h, ds in zip(net.index, ins, net.cotangents(theta, ders, dz, repeat=rep)):
        abar = np.hstack([h, np.ones((n, 1))])
        out.append(KroneckerLayer(index=ix, a_cov=abar.T @ abar / n, g_cov=ds.T @ ds / n))
    return out
