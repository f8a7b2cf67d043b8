"""Launch-retry backoff: how long to wait before trying every candidate again.

Pure and deterministic given its `jitter` input, so a workflow can call it with a value from
`workflow.random()` and stay replay-safe.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 10.0
    factor: float = 1.6
    max_s: float = 300.0
    jitter_fraction: float = 0.2

    def delay(self, retry: int, jitter: float = 0.5) -> float:
        """Seconds to wait before retry number `retry` (0-based). `jitter` is uniform in [0, 1)."""
        base = min(self.initial_s * (self.factor**retry), self.max_s)
        spread = base * self.jitter_fraction
        return max(0.0, base - spread + 2 * spread * jitter)
