"""A multinomial logistic-regression head in numpy (deterministic full-batch training)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]

L2 = 1e-3
"""Weight decay; chosen by cross-validation (see README, Triage quality)."""
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
        z = (np.asarray(x, dtype=np.float64) * SCALE) @ self.weights + self.bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        out: Matrix = e / e.sum(axis=1, keepdims=True)
        return out


def train(x: npt.NDArray[np.floating], y: npt.NDArray[np.integer], n_classes: int,
          sample_weight: npt.NDArray[np.floating] | None = None, l2: float = L2,
          steps: int = STEPS) -> Head:
    """Fit the head by Nesterov-momentum gradient descent from zero (same data → same head)."""
    xs = np.asarray(x, dtype=np.float64) * SCALE
    n, d = xs.shape
    w_s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    w_s = w_s / w_s.sum()
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), np.asarray(y)] = 1.0
    weights = np.zeros((d, n_classes))
    bias = np.zeros(n_classes)
    vw = np.zeros_like(weights)
    vb = np.zeros_like(bias)
    lr, mom = 0.5, 0.9
    for _ in range(steps):
        lw = weights + mom * vw
        lb = bias + mom * vb
        z = xs @ lw + lb
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * w_s[:, None]
        gw = xs.T @ g + l2 * lw
        gb = g.sum(axis=0)
        vw = mom * vw - lr * gw
        vb = mom * vb - lr * gb
        weights = weights + vw
        bias = bias + vb
    return Head(weights, bias)
