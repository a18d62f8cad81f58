"""VIP packages, membership levels and grow value (document 003)."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.auth.models import User

# package -> (points, days)
VIP_PACKAGES = {"month": (100, 30), "season": (250, 90), "year": (600, 365)}
# 003 extends a running membership; 003 also lists "already vip": a membership may not be bought
# more than this far ahead.
MAX_PREPAID = timedelta(days=365)
GOLD_GROW_VALUE = 100
DIAMOND_GROW_VALUE = 1000


def is_vip(user: User, now: datetime) -> bool:
    return user.vip_expire_at is not None and user.vip_expire_at > now


def membership_level(user: User, now: datetime) -> int:
    """0 none, 1 silver, 2 gold (grow value >= 100), 3 diamond (>= 1000)."""
    if not is_vip(user, now):
        return 0
    if user.grow_value >= DIAMOND_GROW_VALUE:
        return 3
    return 2 if user.grow_value >= GOLD_GROW_VALUE else 1


def vip_timestamp(user: User) -> float:
    return user.vip_expire_at.timestamp() if user.vip_expire_at else 0
