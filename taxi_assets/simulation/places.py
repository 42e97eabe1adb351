"""Where Tokyo takes taxis: stations, business districts, nightlife, leisure, event venues.

Coordinates are the real ones (WGS84, rounded to ~10 m). ``weight`` is relative within a
layer; ``sigma_km`` is how far the pull spreads (a terminal's taxi ranks and the streets
around it).
"""

from __future__ import annotations

from typing import NamedTuple


class Hotspot(NamedTuple):
    name: str
    lat: float
    lon: float
    weight: float
    sigma_km: float


LAYERS = ("station", "business", "nightlife", "leisure", "residential")

HOTSPOTS: dict[str, tuple[Hotspot, ...]] = {
    "station": (
        Hotspot("Tokyo", 35.6812, 139.7671, 1.0, 0.45),
        Hotspot("Shinjuku", 35.6896, 139.7006, 1.0, 0.5),
        Hotspot("Shibuya", 35.6580, 139.7016, 0.8, 0.45),
        Hotspot("Ikebukuro", 35.7295, 139.7109, 0.7, 0.45),
        Hotspot("Shinagawa", 35.6285, 139.7388, 0.7, 0.45),
        Hotspot("Ueno", 35.7141, 139.7774, 0.5, 0.4),
        Hotspot("Akihabara", 35.6984, 139.7731, 0.35, 0.35),
        Hotspot("Shimbashi", 35.6663, 139.7583, 0.5, 0.35),
        Hotspot("Hamamatsucho", 35.6555, 139.7571, 0.3, 0.35),
        Hotspot("Ebisu", 35.6467, 139.7101, 0.3, 0.35),
        Hotspot("Gotanda", 35.6262, 139.7233, 0.25, 0.35),
        Hotspot("Iidabashi", 35.7020, 139.7450, 0.25, 0.35),
        Hotspot("Kanda", 35.6918, 139.7709, 0.2, 0.3),
    ),
    "business": (
        Hotspot("Otemachi", 35.6846, 139.7661, 1.0, 0.4),
        Hotspot("Marunouchi", 35.6810, 139.7640, 0.9, 0.35),
        Hotspot("Nishi-Shinjuku", 35.6900, 139.6920, 0.8, 0.45),
        Hotspot("Toranomon", 35.6700, 139.7500, 0.6, 0.35),
        Hotspot("Nihonbashi", 35.6825, 139.7740, 0.5, 0.35),
        Hotspot("Akasaka", 35.6767, 139.7372, 0.5, 0.35),
        Hotspot("Shinagawa Konan", 35.6270, 139.7420, 0.4, 0.35),
        Hotspot("Kasumigaseki", 35.6740, 139.7500, 0.4, 0.3),
    ),
    "nightlife": (
        Hotspot("Kabukicho", 35.6945, 139.7029, 1.0, 0.35),
        Hotspot("Roppongi", 35.6628, 139.7314, 0.9, 0.35),
        Hotspot("Ginza", 35.6717, 139.7650, 0.9, 0.35),
        Hotspot("Shibuya Center-gai", 35.6600, 139.6985, 0.7, 0.35),
        Hotspot("Shimbashi", 35.6663, 139.7583, 0.6, 0.3),
        Hotspot("Akasaka", 35.6740, 139.7370, 0.5, 0.3),
        Hotspot("Ebisu", 35.6467, 139.7101, 0.4, 0.3),
        Hotspot("Ikebukuro", 35.7300, 139.7150, 0.4, 0.35),
        Hotspot("Ueno Okachimachi", 35.7075, 139.7745, 0.3, 0.3),
    ),
    "leisure": (
        Hotspot("Ginza", 35.6717, 139.7650, 1.0, 0.4),
        Hotspot("Omotesando", 35.6654, 139.7125, 0.8, 0.4),
        Hotspot("Asakusa", 35.7118, 139.7966, 0.7, 0.4),
        Hotspot("Ueno Park", 35.7156, 139.7740, 0.6, 0.45),
        Hotspot("Odaiba", 35.6267, 139.7750, 0.5, 0.6),
        Hotspot("Tokyo Skytree", 35.7101, 139.8107, 0.5, 0.35),
        Hotspot("Roppongi Hills", 35.6604, 139.7292, 0.4, 0.3),
        Hotspot("Shibuya", 35.6580, 139.7016, 0.6, 0.4),
    ),
    # Homes and hotels everywhere: a broad field centred on the Yamanote loop.
    "residential": (Hotspot("Central Tokyo", 35.6850, 139.7450, 1.0, 6.0),),
}

# Large venues whose crowd leaves at once; weight = chance of being the day's event.
EVENT_VENUES = (
    Hotspot("Tokyo Dome", 35.7056, 139.7519, 0.5, 0.3),
    Hotspot("Nippon Budokan", 35.6933, 139.7499, 0.2, 0.3),
    Hotspot("Ryogoku Kokugikan", 35.6969, 139.7933, 0.15, 0.3),
    Hotspot("Tokyo International Forum", 35.6767, 139.7640, 0.15, 0.25),
)
