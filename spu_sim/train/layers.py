"""Layer-wise view of the classifiers: the deep MLP, a stack of dense layers on one flat parameter vector theta,

    h_0 = x,   s_l = h_{l-1} W_l + c_l,   h_l = act(s_l) (l < L),   z = s_L,
    theta = [W_1 (n_in_1, n_out_1) row-major, c_1, W_2, c_2, ..., W_L, c_L],

so ``LogReg`` is the stack with no hidden layer and ``MLP(hidden=h)`` the stack with one
(``spu_sim.train.models.as_layers`` returns the equivalent ``DeepMLP`` of either, same theta layout), and
``DeepMLP(hidden=[h1, h2, ...])`` is the deeper model (``model.hidden: [32, 32]`` in a config). ``index[l]``
locates layer l's homogeneous weight matrix Wbar_l = [W_l; c_l] (n_in + 1, n_out) in theta, the block K-FAC
works on (``spu_sim.train.models.kronecker_layers``).
"""

from __future__ import annotations

import numpy as np

from spu_sim.errors import BadInputError

ACTIVATIONS = ("tanh", "relu")


class DeepMLP:
    """Dense layers of widths ``hidden`` (a list; may be empty) with ``activation`` between them."""

    def __init__(self, d_in: int, hidden: list[int], n_classes: int, activation: str = "tanh"):
        if activation not in ACTIVATIONS:
            raise BadInputError(f"{activation!r} is not an activation; choose one of: "
                                f"{', '.join(ACTIVATIONS)}")
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

    def vjp_rows(self, theta: np.ndarray, x: np.ndarray, dz: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Per-example vector-Jacobian products, shape (n r, N): row (i, k) = J_i^T dz[i, k] for output cotangents
        dz (n, r, d_z), J_i = dz_i/dtheta. Batched over examples and rows (no Python loop over either): per layer
        the block of row (i, k) is the outer product h_{l-1,i} ds_{l,ik}^T, written once into its slice of the
        result (cost O(n r N) writes plus O(n r sum_l n_out n_in) for the back-propagation). ``out``: a float64
        C-contiguous array of n r N entries to write into (a caller's reused buffer: no fresh pages per step), else new."""
        n, r = dz.shape[0], dz.shape[1]
        ins, ders, _ = self.forward(theta, x)
        if out is None or out.size != n * r * self.n_params or out.dtype != np.float64 or not out.flags.c_contiguous:
            out = np.empty(n * r * self.n_params)
        out = out.reshape(n, r, self.n_params)
        for ix, h, ds in zip(self.index, ins, self.cotangents(theta, ders, dz.reshape(n * r, -1), repeat=r)):
            n_in, n_out = ix.shape[0] - 1, ix.shape[1]
            start = int(ix[0, 0])   # the block [W_l row-major, c_l] is contiguous in theta
            ds = ds.reshape(n, r, n_out)
            w = out[:, :, start:start + n_in * n_out].reshape(n, r, n_in, n_out)   # a view (last axis split)
            np.multiply(h[:, None, :, None], ds[:, :, None, :], out=w)
            out[:, :, start + n_in * n_out:start + (n_in + 1) * n_out] = ds
        return out.reshape(n * r, self.n_params)

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
