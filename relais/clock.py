"""Time, in one place, so tests can freeze it (``monkeypatch.setattr(clock, "now", ...)``).

Every stored time is an ISO 8601 string in UTC with microseconds: text order is time order.
"""

from datetime import datetime, timedelta, timezone


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def now_iso() -> str:
    return iso(now())


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def in_(delta: timedelta) -> str:
    """The ISO time ``delta`` from now."""
    return iso(now() + delta)
