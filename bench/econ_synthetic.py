"""Synthetic traces (Markov on/off spells) so the policies are not judged on the shipped traces alone.

Each zone alternates spells with spot and without, of exponential lengths with the given means
(seeded, deterministic), written in the shipped format and named like the AWS files so the
catalog prices them (p3.2xlarge).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CASES = {
    # name: [(zone, mean hours with spot, mean hours without)]
    "synthetic-scarce": [("us-east-1a", 0.8, 2.5), ("us-east-1c", 1.5, 2.0), ("us-east-2a", 1.0, 1.0)],
    "synthetic-steady": [("us-east-1a", 8.0, 1.0), ("us-west-2a", 4.0, 0.5), ("us-west-2b", 12.0, 3.0)],
    "synthetic-short": [("us-east-1a", 0.3, 0.3), ("us-east-1c", 0.5, 1.5), ("us-west-2a", 0.25, 0.1)],
}
GAP_S = 300
SPAN_H = 400


def write_case(root: Path, name: str, seed: int = 7) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}/{name}")
    ticks = SPAN_H * 3600 // GAP_S
    for zone, on_h, off_h in CASES[name]:
        values: list[int] = []
        up = rng.random() < on_h / (on_h + off_h)
        while len(values) < ticks:
            spell = max(1, round(rng.expovariate(1.0 / (on_h if up else off_h)) * 3600 / GAP_S))
            values.extend([1 if up else 0] * spell)
            up = not up
        doc = {"metadata": {"gap_seconds": GAP_S}, "data": values[:ticks]}
        (folder / f"{zone}_v100_1.json").write_text(json.dumps(doc))
    return folder
