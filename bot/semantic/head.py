"""A multinomial logistic-regression head in numpy (deterministic full-batch training)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

L2 = 1e-4
"""Weight decay: the best of 3e-5 … 3e-3 in cross-validation with the rules of 2026-12-04 (README);
fixed since, so the combination policy is chosen for one head."""
STEPS = 300
SCALE = 8.0
"""Unit-length embeddings are multiplied by this so plain gradient steps move fast enough."""


@dataclass(frozen=True)
class Head:
    """Softmax(x · W + b) over the classes, for unit-length embeddings x."""

    weights: Matrix
    bias: Matrix

    def probabilities(self, x: npt.NDArray[np.floating]) -> Matrix:
        """One row of class probabilities per embedding row."""
        z = (np.asarray(x, dtype=np.float32) * np.float32(SCALE)) @ self.weights + self.bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        out: Matrix = e / e.sum(axis=1, keepdims=True)
        return out


def train(x: npt.NDArray[np.floating], y: npt.NDArray[np.integer], n_classes: int,
          sample_weight: npt.NDArray[np.floating] | None = None, l2: float = L2,
          steps: int = STEPS) -> Head:
    """Fit the head by Nesterov-momentum gradient descent from zero (same data → same head)."""
    # float32 throughout: half the time of float64, and the head is far from needing more.
    xs = np.asarray(x, dtype=np.float32) * np.float32(SCALE)
    n, d = xs.shape
    w_s = np.ones(n, np.float32) if sample_weight is None else np.asarray(sample_weight, np.float32)
    w_s = w_s / w_s.sum()
    onehot = np.zeros((n, n_classes), np.float32)
    onehot[np.arange(n), np.asarray(y)] = 1.0
    # Gradient descent from zero keeps the weights in the span of the rows (W = Xᵀ·A), so
    # with fewer examples than features we iterate on A through the n x n Gram matrix: the
    # same steps and the same result, several times cheaper.
    gram = xs @ xs.T
    coef = np.zeros((n, n_classes), np.float32)
    bias = np.zeros(n_classes, np.float32)
    vc = np.zeros_like(coef)
    vb = np.zeros_like(bias)
    lr, mom, decay = np.float32(0.5), np.float32(0.9), np.float32(l2)
    for _ in range(steps):
        lc = coef + mom * vc
        lb = bias + mom * vb
        z = gram @ lc + lb
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * w_s[:, None]
        vc = mom * vc - lr * (g + decay * lc)
        vb = mom * vb - lr * g.sum(axis=0)
        coef = coef + vc
        bias = bias + vb
    return Head((xs.T @ coef).astype(np.float32), bias.astype(np.float32))
