from __future__ import annotations

from shared.settings import PlatformSettings


class StatsSettings(PlatformSettings):
    consumer_group: str = "stats"
    # Records read per round, and how long a record may stay unacknowledged by a consumer that
    # died before another takes it over.
    read_count: int = 100
    claim_idle_ms: int = 30_000
