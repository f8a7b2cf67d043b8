"""The offline optimum: the cheapest way to finish by the deadline knowing the whole trace.

A dynamic programme over (tick, waste, what is held), vectorised with numpy over the waste
and over many runs (start offsets) at once. Waste w = elapsed - progress: it grows by a tick
while holding nothing and by the changeover d at every (re)start, and the job finishes by the
deadline D exactly when w never exceeds D - C. A start is counted as "progress falls by d"
(the changeover is paid, then the tick's progress accrues), which equals the replay's model for
every schedule the optimum would pick (a spell lost inside its changeover is never worth
paying for: holding nothing instead wastes the same time for free).

Waste is counted in quanta q = tick/k; d is rounded DOWN to a whole number of quanta (k is
chosen so that this keeps at least 80% of d) and D - C up, so the optimum is a true lower
bound of every policy the replay runs (it is at most a few seconds per restart optimistic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MAX_WASTE_STATES = 6000
"""A bound on the waste axis (memory and time); k is lowered to stay under it."""


def quanta(gap_h: float, changeover_h: float, slack_h: float) -> int:
    """k: quanta per tick, the smallest that keeps >= 80% of d (within MAX_WASTE_STATES)."""
    best = 1
    for k in range(1, 13):
        if slack_h * k / gap_h > MAX_WASTE_STATES:
            break
        best = k
        dq = math.floor(changeover_h * k / gap_h + 1e-9)
        if changeover_h <= 0 or dq * gap_h / k >= 0.8 * changeover_h:
            return k
    return best


def optimum(avail: np.ndarray, spot_price: Sequence[float], ondemand_price: float, gap_h: float,
            compute_h: float, deadline_h: float, changeover_h: float) -> np.ndarray:
    """The least cost per run. `avail`: bool array (zones, runs, ticks): spot there at each tick;
    spot_price: per zone; on-demand from the cheapest zone (always there)."""
    zones, runs, ticks = avail.shape
    k = quanta(gap_h, changeover_h, deadline_h - compute_h)
    q = gap_h / k
    dq = int(math.floor(changeover_h / q + 1e-9))
    cq = compute_h / q  # work in quanta (may be fractional: the last tick is paid pro rata)
    wmax = int(math.ceil((deadline_h - compute_h) / q - 1e-9))
    width = wmax + 1
    steps = min(ticks, int(math.ceil((deadline_h + q) / gap_h)) + 1)
    inf = np.inf
    prices = [ondemand_price, *spot_price]  # held index 1 = on-demand, 2.. = spot zones
    held = 2 + zones
    nxt = np.full((held, runs, width + max(dq, k) + 1), inf)  # V_{i+1}, padded with inf past wmax
    w = np.arange(width, dtype=np.float64)
    for i in range(steps - 1, -1, -1):
        progress = i * k - w  # quanta done before tick i, per waste
        cur = np.full_like(nxt, inf)
        none = nxt[0, :, k:k + width]  # wait: waste + k
        # A start into market j: waste + dq, finishing within the tick if progress - dq + k >= cq.
        fin_start = (progress - dq + k) >= cq - 1e-9
        fin_cont = (progress + k) >= cq - 1e-9
        start_best = np.full((runs, width), inf)
        conts = []
        for j in range(1, held):
            price = prices[j - 1]
            pay_start = np.where(fin_start, price * q * np.maximum(cq - progress + dq, 0.0), price * gap_h)
            after = np.where(fin_start[None, :], 0.0, nxt[j, :, dq:dq + width])
            start_j = pay_start[None, :] + after
            pay_cont = np.where(fin_cont, price * q * np.maximum(cq - progress, 0.0), price * gap_h)
            cont_j = pay_cont[None, :] + np.where(fin_cont[None, :], 0.0, nxt[j, :, :width])
            if j >= 2:
                ok = avail[j - 2, :, i][:, None]
                start_j = np.where(ok, start_j, inf)
                cont_j = np.where(ok, cont_j, inf)
            np.minimum(start_best, start_j, out=start_best)
            conts.append(cont_j)
        base = np.minimum(none, start_best)
        cur[0, :, :width] = base
        for j in range(1, held):
            cur[j, :, :width] = np.minimum(base, conts[j - 1])
        # Already done before this tick (progress >= cq): nothing more to pay.
        done = progress >= cq - 1e-9
        cur[:, :, :width] = np.where(done[None, None, :], 0.0, cur[:, :, :width])
        nxt = cur
    return nxt[0, :, 0]
