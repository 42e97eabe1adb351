"""A flat kilometre frame over the service area.

Twenty kilometres across, central Tokyo is small enough for an equirectangular projection
(distance error well under 0.1%), which keeps the simulation in plain vectorized arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from taxi_assets.service_area import ServiceArea

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.320


@dataclass(frozen=True)
class LocalFrame:
    """x (km east) and y (km north) of the south-west corner of the snapped area."""

    lat0: float
    lon0: float
    width_km: float
    height_km: float
    km_per_deg_lon: float

    @classmethod
    def of(cls, area: ServiceArea) -> LocalFrame:
        lat_min, lat_max, lon_min, lon_max = area.snapped_bounds
        kx = KM_PER_DEG_LON_EQUATOR * math.cos(math.radians((lat_min + lat_max) / 2))
        return cls(
            lat0=lat_min,
            lon0=lon_min,
            width_km=(lon_max - lon_min) * kx,
            height_km=(lat_max - lat_min) * KM_PER_DEG_LAT,
            km_per_deg_lon=kx,
        )

    def to_xy(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (lon - self.lon0) * self.km_per_deg_lon, (lat - self.lat0) * KM_PER_DEG_LAT

    def to_latlon(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.lat0 + y / KM_PER_DEG_LAT, self.lon0 + x / self.km_per_deg_lon

    def clip(self, x: np.ndarray, y: np.ndarray, margin_km: float = 0.05):
        """Points pulled inside the area, ``margin_km`` from its edges."""
        return (
            np.clip(x, margin_km, self.width_km - margin_km),
            np.clip(y, margin_km, self.height_km - margin_km),
        )
