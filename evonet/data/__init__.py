"""Small datasets shipped with evonet (package data, no download).

``digits.npz`` is scikit-learn's copy of the UCI ML hand-written digits test set
(1797 images of 8x8 pixels, grey levels 0..16, ten classes), written once with
``sklearn.datasets.load_digits`` so that evonet does not depend on scikit-learn.
"""

from __future__ import annotations

from importlib import resources

import numpy as np


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images, target)``: uint8 arrays of shape (1797, 8, 8) with values 0..16, and (1797,) with 0..9."""
    with resources.files(__name__).joinpath("digits.npz").open("rb") as fh:
        with np.load(fh) as data:
            return data["images"].copy(), data["target"].copy()
