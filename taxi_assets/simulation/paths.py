"""Taxi movements as straight segments, appended to a flat log.

A segment is (taxi, t0, t1, x0, y0, x1, y1, status): constant speed from (x0, y0) at t0 to
(x1, y1) at t1, in km and seconds after Tokyo midnight. Roads are approximated by
L-shaped paths (Tokyo's grid-ish streets: an L is ~1.27x the straight line on average)
and cruising by detours through one or two waypoints.
"""

from __future__ import annotations

import math
from array import array

from taxi_assets.frames import PROBE_STATUSES
from taxi_assets.simulation.geo import LocalFrame

VACANT, OCCUPIED, DISPATCHED, OFF_DUTY = (
    float(PROBE_STATUSES.index(s)) for s in ("vacant", "occupied", "dispatched", "off_duty")
)
SEGMENT_FIELDS = ("taxi", "t0", "t1", "x0", "y0", "x1", "y1", "status")
MIN_CRUISE_S = 5 * 60.0
MAX_EXTRA_CRUISE_S = 25 * 60.0
LOOKING_SPEED_FACTOR = 0.7
"""Vacant taxis looking for fares drive slower than traffic."""


class SegmentLog:
    """Append-only segment table; an ``array`` keeps a million segments compact."""

    def __init__(self, frame: LocalFrame) -> None:
        self.data = array("d")
        self.frame = frame

    def stay(self, taxi: int, t0: float, t1: float, x: float, y: float, status: float) -> None:
        if t1 > t0:
            self.data.extend((taxi, t0, t1, x, y, x, y, status))

    def polyline(self, taxi: int, t0: float, t1: float, pts: list, status: float) -> None:
        """Constant speed along the points from t0 to t1 (a stay if they do not move)."""
        lengths = [math.dist(a, b) for a, b in zip(pts, pts[1:], strict=False)]
        total = sum(lengths)
        if total <= 1e-9 or t1 <= t0:
            self.stay(taxi, t0, t1, pts[0][0], pts[0][1], status)
            return
        t = t0
        for (a, b), length in zip(zip(pts, pts[1:], strict=False), lengths, strict=True):
            t_next = t + (t1 - t0) * length / total
            if t_next > t:
                self.data.extend((taxi, t, t_next, a[0], a[1], b[0], b[1], status))
            t = t_next

    def road(self, taxi, t0, t1, x0, y0, x1, y1, status, lon_first: bool) -> None:
        """Drive an L-shaped path (east-west leg first or second)."""
        corner = (x1, y0) if lon_first else (x0, y1)
        self.polyline(taxi, t0, t1, [(x0, y0), corner, (x1, y1)], status)

    def cruise_to(self, taxi, t0, t1, x0, y0, x1, y1, speed_kms, u_extra, u_angle) -> None:
        """Vacant from (x0, y0) at t0 until passing (x1, y1) at t1: wait at a stand, then
        cruise a detour through one waypoint (on the ellipse of the right path length)."""
        road_km = abs(x1 - x0) + abs(y1 - y0)
        slack = (t1 - t0) - road_km / speed_kms
        cruise_s = road_km / speed_kms + min(slack, MIN_CRUISE_S + u_extra * MAX_EXTRA_CRUISE_S)
        t_cruise = t1 - cruise_s
        self.stay(taxi, t0, t_cruise, x0, y0, VACANT)
        path_km = LOOKING_SPEED_FACTOR * speed_kms * cruise_s
        if path_km <= road_km:
            self.road(taxi, t_cruise, t1, x0, y0, x1, y1, VACANT, u_angle < 0.5)
            return
        half_focal = math.dist((x0, y0), (x1, y1)) / 2
        a = path_km / 2
        b = math.sqrt(max(a * a - half_focal * half_focal, 0.0))
        ux, uy = (
            ((x1 - x0) / (2 * half_focal), (y1 - y0) / (2 * half_focal))
            if (half_focal > 1e-9)
            else (1.0, 0.0)
        )
        phi = 2 * math.pi * u_angle
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        wx = cx + a * math.cos(phi) * ux - b * math.sin(phi) * uy
        wy = cy + a * math.cos(phi) * uy + b * math.sin(phi) * ux
        wx, wy = self._inside(wx, wy)
        self.polyline(taxi, t_cruise, t1, [(x0, y0), (wx, wy), (x1, y1)], VACANT)

    def idle(self, taxi, t0, t1, x, y, speed_kms, u_extra, u_angle) -> None:
        """Vacant with nothing to do until t1: wait at a stand, then cruise a triangular
        loop back to the same spot (so the next leg starts where the taxi is)."""
        cruise_s = min(t1 - t0, MIN_CRUISE_S + u_extra * MAX_EXTRA_CRUISE_S)
        t_cruise = t1 - cruise_s
        self.stay(taxi, t0, t_cruise, x, y, VACANT)
        side = LOOKING_SPEED_FACTOR * speed_kms * cruise_s / 3
        phi = 2 * math.pi * u_angle
        w1 = self._inside(x + side * math.cos(phi), y + side * math.sin(phi))
        w2 = self._inside(
            x + side * math.cos(phi + math.pi / 3), y + side * math.sin(phi + math.pi / 3)
        )
        self.polyline(taxi, t_cruise, t1, [(x, y), w1, w2, (x, y)], VACANT)

    def _inside(self, x: float, y: float) -> tuple[float, float]:
        f = self.frame
        return min(max(x, 0.05), f.width_km - 0.05), min(max(y, 0.05), f.height_km - 0.05)
