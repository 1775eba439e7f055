"""Angle helpers shared by every layer (imports only numpy).

Angles are in degrees (conventions: README.md, "Conventions: coordinates, angles, time");
a wrapped angle lies in (−180, 180].
"""

from __future__ import annotations

import numpy as np


def wrap_deg(a):
    """Wrap degrees to (−180, 180].

    Args:
        a: array-like of angles in degrees, any range.

    Returns:
        float64 array of the same shape (a 0-d array for a scalar).
    """
    a = np.mod(np.asarray(a, dtype=np.float64) + 180.0, 360.0) - 180.0
    return np.where(a == -180.0, 180.0, a)
