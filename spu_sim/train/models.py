"""NumPy classifiers with per-example Jacobians, softmax cross-entropy and its curvature (dense, as a factor,
and per layer as K-FAC's Kronecker factors); the mini-batch problem the optimisers see (``make_problem``).

Parameters are one flat vector theta (N,). For inputs X (n, d) the model gives logits z (n, d_z) and

    loss = (1/n) sum_i CE(softmax(z_i), y_i),     grad = (1/n) sum_i J_i^T (p_i - e_{y_i}),

with J_i = dz_i / dtheta (d_z, N) and p_i = softmax(z_i). The loss Hessian in the outputs is
H_L,i = diag(p_i) - p_i p_i^T = L_i L_i^T with the closed-form factor L_i = diag(sqrt p_i) - p_i sqrt(p_i)^T
(check: L L^T = diag(p) - 2 p p^T + p p^T sum(p)). Curvature matrices, both as C = U^T U:

    GGN = (1/n) sum_i J_i^T H_L,i J_i          U = stack_i(L_i^T J_i) / sqrt(n)   (n d_z, N)
    empirical Fisher = (1/n) sum_i g_i g_i^T   U = stack_i(g_i^T) / sqrt(n)        (n, N),  g_i = J_i^T (p_i - e_{y_i})

For softmax cross-entropy the GGN equals the Fisher.

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

``MODELS`` is the registry of the model names (``model.name``): ``logreg`` and ``mlp`` (an int ``hidden``: the
one-hidden-layer ``MLP``; a list of widths: the deeper ``spu_sim.train.layers.DeepMLP``), and ``function`` (your own
model, ``spu_sim.train.custom.UserModel``, built by ``model.function``).
"""

from __future__ import annotations

from typing import Callable, Literal, NamedTuple

import numpy as np

from spu_sim.errors import BadInputError
from spu_sim.optim.base import LocalProblem
from spu_sim.registry import Registry
from spu_sim.train.custom import UserModel, function_model
from spu_sim.train.layers import ACTIVATIONS, DeepMLP

CURVATURES = ("ggn", "empirical_fisher")


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits (n, d_z)."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(z: np.ndarray, y: np.ndarray) -> float:
    """Mean softmax cross-entropy of logits (n, d_z) against integer labels (n,)."""
    zs = z - z.max(axis=1, keepdims=True)
    log_p = zs - np.log(np.exp(zs).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def loss_hessian_factor(p: np.ndarray) -> np.ndarray:
    """L (n, d_z, d_z) with H_L = diag(p) - p p^T = L L^T for each row of p (n, d_z)."""
    s = np.sqrt(p)
    return np.einsum("ni,ij->nij", s, np.eye(p.shape[1])) - np.einsum("ni,nj->nij", p, s)


class LogReg:
    """Multinomial logistic regression z = X W + c; theta = [W (d, d_z) row-major, c (d_z)]."""

    def __init__(self, d_in: int, n_classes: int):
        self.d_in, self.d_z = int(d_in), int(n_classes)
        self.n_params = self.d_in * self.d_z + self.d_z

    def init(self, rng: np.random.Generator, scale: float = 0.01) -> np.ndarray:
        theta = np.zeros(self.n_params)
        theta[: self.d_in * self.d_z] = scale * rng.standard_normal(self.d_in * self.d_z)
        return theta

    def _unpack(self, theta):
        k = self.d_in * self.d_z
        return theta[:k].reshape(self.d_in, self.d_z), theta[k:]

    def logits(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        w, c = self._unpack(theta)
        return x @ w + c

    def backprop(self, theta: np.ndarray, x: np.ndarray, dz: np.ndarray) -> np.ndarray:
        """sum_i J_i^T dz_i, shape (N,), for output cotangents dz (n, d_z)."""
        return np.concatenate([(x.T @ dz).ravel(), dz.sum(axis=0)])

    def jacobian(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Per-example Jacobians dz_i/dtheta, shape (n, d_z, N)."""
        n, eye = x.shape[0], np.eye(self.d_z)
        jw = np.einsum("ni,cd->ncid", x, eye).reshape(n, self.d_z, -1)
        jc = np.broadcast_to(eye, (n, self.d_z, self.d_z))
        return np.concatenate([jw, jc], axis=2)


class MLP:
    """One hidden layer: a = X W1 + c1, h = act(a), z = h W2 + c2; theta = [W1, c1, W2, c2] (row-major)."""

    def __init__(self, d_in: int, hidden: int, n_classes: int, activation: str = "tanh"):
        if activation not in ACTIVATIONS:
            raise BadInputError(f"{activation!r} is not an activation; choose one of: {', '.join(ACTIVATIONS)}")
        self.d_in, self.hidden, self.d_z, self.activation = int(d_in), int(hidden), int(n_classes), activation
        self.sizes = [self.d_in * self.hidden, self.hidden, self.hidden * self.d_z, self.d_z]
        self.n_params = int(sum(self.sizes))

    def init(self, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
        w1 = scale * rng.standard_normal(self.sizes[0]) / np.sqrt(self.d_in)
        w2 = scale * rng.standard_normal(self.sizes[2]) / np.sqrt(self.hidden)
        return np.concatenate([w1, np.zeros(self.hidden), w2, np.zeros(self.d_z)])

    def _unpack(self, theta):
        w1, c1, w2, c2 = np.split(theta, np.cumsum(self.sizes)[:-1])
        return w1.reshape(self.d_in, self.hidden), c1, w2.reshape(self.hidden, self.d_z), c2

    def _hidden(self, theta, x):
        w1, c1, w2, c2 = self._unpack(theta)
        a = x @ w1 + c1
        if self.activation == "tanh":
            h = np.tanh(a)
            dh = 1.0 - h * h
        else:
            h = np.maximum(a, 0.0)
            dh = (a > 0).astype(float)
        return h, dh, w2, c2

    def logits(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        h, _, w2, c2 = self._hidden(theta, x)
        return h @ w2 + c2

    def backprop(self, theta: np.ndarray, x: np.ndarray, dz: np.ndarray) -> np.ndarray:
        h, dh, w2, _ = self._hidden(theta, x)
        da = (dz @ w2.T) * dh
        return np.concatenate([(x.T @ da).ravel(), da.sum(axis=0), (h.T @ dz).ravel(), dz.sum(axis=0)])

    def jacobian(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        h, dh, w2, _ = self._hidden(theta, x)
        n, eye = x.shape[0], np.eye(self.d_z)
        d = np.einsum("jc,nj->ncj", w2, dh)  # dz_c / da_j
        jw1 = np.einsum("ni,ncj->ncij", x, d).reshape(n, self.d_z, -1)
        jw2 = np.einsum("nj,cd->ncjd", h, eye).reshape(n, self.d_z, -1)
        jc2 = np.broadcast_to(eye, (n, self.d_z, self.d_z))
        return np.concatenate([jw1, d, jw2, jc2], axis=2)


Model = LogReg | MLP | DeepMLP | UserModel


def _logreg(d_in: int, n_classes: int, *, hidden: int | list[int], activation: str) -> LogReg:
    return LogReg(d_in, n_classes)


def _mlp(d_in: int, n_classes: int, *, hidden: int | list[int], activation: str) -> MLP | DeepMLP:
    if isinstance(hidden, (list, tuple)):
        return DeepMLP(d_in, list(hidden), n_classes, activation)
    return MLP(d_in, hidden, n_classes, activation)


#: model builders by ``model.name``: ``build(d_in, n_classes, *, hidden, activation) -> Model``
MODELS: Registry[Callable[..., Model]] = Registry("a model", "model.name")
MODELS.register("logreg", _logreg)
MODELS.register("mlp", _mlp)
MODELS.register("function", function_model)   # model.function: 'module:build', build(dataset) -> UserModel


def make_model(name: str, d_in: int, n_classes: int, *, hidden: int | list[int] = 16,
               activation: str = "tanh") -> Model:
    """``logreg`` or ``mlp`` for inputs of dimension d_in and n_classes outputs; ``mlp`` with a list of
    widths is the deeper ``spu_sim.train.layers.DeepMLP`` (same theta layout, one block per layer)."""
    return MODELS.get(name)(d_in, n_classes, hidden=hidden, activation=activation)


def loss_and_grad(model: Model, theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and its gradient by backpropagation, O(n N)."""
    z = model.logits(theta, x)
    p = softmax(z)
    p[np.arange(len(y)), y] -= 1.0
    return cross_entropy(z, y), model.backprop(theta, x, p / len(y))


def ggn_factor(model: Model, theta: np.ndarray, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """U (n d_z, N) with GGN = U^T U = (1/n) sum_i J_i^T H_L,i J_i: row (i, k) = J_i^T L_i[:, k] / sqrt(n), one
    batched vector-Jacobian product per column of the loss-Hessian factor (``DeepMLP.vjp_rows``), so J_f is never
    formed on its own; O(n d_z N). ``out``: a buffer to write U into (see ``DeepMLP.vjp_rows``)."""
    net = as_layers(model)
    lf = loss_hessian_factor(softmax(net.logits(theta, x)))           # (n, d_z c, d_z k)
    return net.vjp_rows(theta, x, lf.transpose(0, 2, 1) / np.sqrt(x.shape[0]), out=out)


def empirical_fisher_factor(model: Model, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                            out: np.ndarray | None = None) -> np.ndarray:
    """U (n, N) with empirical Fisher = U^T U = (1/n) sum_i g_i g_i^T (per-example gradients g_i, batched)."""
    net = as_layers(model)
    r = softmax(net.logits(theta, x))
    r[np.arange(len(y)), y] -= 1.0
    return net.vjp_rows(theta, x, r[:, None, :] / np.sqrt(x.shape[0]), out=out)


def ggn(model: Model, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Dense GGN (N, N)."""
    u = ggn_factor(model, theta, x)
    return u.T @ u


def empirical_fisher(model: Model, theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Dense empirical Fisher (N, N)."""
    u = empirical_fisher_factor(model, theta, x, y)
    return u.T @ u


class KroneckerLayer(NamedTuple):
    """One layer's K-FAC statistics of a mini-batch.

    index: int array (n_in + 1, n_out): theta[index] is Wbar (the last row the bias);
    a_cov: A = E[abar abar^T], (n_in + 1, n_in + 1); g_cov: G, (n_out, n_out).
    """

    index: np.ndarray
    a_cov: np.ndarray
    g_cov: np.ndarray


def as_layers(model) -> DeepMLP:
    """The ``DeepMLP`` with the same theta layout and function as ``model`` (LogReg, MLP or DeepMLP)."""
    if isinstance(model, DeepMLP):
        return model
    if isinstance(model, LogReg):
        return DeepMLP(model.d_in, [], model.d_z)
    if isinstance(model, MLP):
        return DeepMLP(model.d_in, [model.hidden], model.d_z, model.activation)
    raise BadInputError(f"K-FAC needs a model of dense layers (logreg, mlp), not {type(model).__name__}")


def kronecker_layers(model, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                     curvature: str = "ggn") -> list[KroneckerLayer]:
    """The per-layer K-FAC statistics of a mini-batch (module docstring); cost O(n d_z sum_l n_in n_out
    + n sum_l (n_in^2 + d_z n_out^2))."""
    net = as_layers(model)
    ins, ders, z = net.forward(theta, x)
    n = x.shape[0]
    p = softmax(z)
    if curvature == "ggn":
        lf = loss_hessian_factor(p)  # (n, d_z, d_z); H_L,i = sum_k L_i[:, k] L_i[:, k]^T
        dz, rep = lf.transpose(0, 2, 1).reshape(n * net.d_z, net.d_z), net.d_z
    elif curvature == "empirical_fisher":
        dz, rep = p.copy(), 1
        dz[np.arange(n), y] -= 1.0
    else:
        raise BadInputError(f"{curvature!r} is not a curvature; choose one of: {', '.join(CURVATURES)}")
    out = []
    for ix, h, ds in zip(net.index, ins, net.cotangents(theta, ders, dz, repeat=rep)):
        abar = np.hstack([h, np.ones((n, 1))])
        out.append(KroneckerLayer(index=ix, a_cov=abar.T @ abar / n, g_cov=ds.T @ ds / n))
    return out


def make_problem(model: Model, theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                 curvature: Literal["ggn", "empirical_fisher"] = "ggn",
                 factor_out: np.ndarray | None = None) -> LocalProblem:
    """The mini-batch problem for the optimisers: loss, gradient now, curvature factor on demand (a UserModel:
    its own functions, ``UserModel.problem``). ``factor_out``: a buffer the factor is written into when it is built
    (the caller must not hold an earlier factor written there: spu_sim.train.loop keeps two and alternates)."""
    if isinstance(model, UserModel):
        return model.problem(theta, x, y)
    loss, grad = loss_and_grad(model, theta, x, y)
    if curvature == "ggn":
        factor_fn = lambda: ggn_factor(model, theta, x, out=factor_out)  # noqa: E731
    elif curvature == "empirical_fisher":
        factor_fn = lambda: empirical_fisher_factor(model, theta, x, y, out=factor_out)  # noqa: E731
    else:
        raise BadInputError(f"{curvature!r} is not a curvature; choose one of: {', '.join(CURVATURES)}")
    layers_fn = lambda: kronecker_layers(model, theta, x, y, curvature)  # noqa: E731
    return LocalProblem(loss, grad, factor_fn, batch_size=x.shape[0], d_z=model.d_z, layers_fn=layers_fn)


def accuracy(model: Model, theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of argmax(logits) == y."""
    return float((model.logits(theta, x).argmax(axis=1) == y).mean())
