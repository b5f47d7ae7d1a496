"""Times as people read them: in the registry's time zone, with the zone's name, in their language.

Stored times stay ISO 8601 in UTC (:mod:`relais.clock`); only what is shown is converted. The
registry has one time zone (``RELAIS_TIMEZONE``, Brussels by default), the same for its pages
and its e-mails, so that a receipt and the share's page give the same hour for the same event,
and always say which zone that hour is in (a partner abroad must not guess).
"""

from __future__ import annotations

import re
from datetime import timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_date, format_datetime, format_time

from relais import clock

DEFAULT_ZONE = "Europe/Brussels"

# Relais' English is a European registry's: day before month and a 24-hour clock ("24 Nov 2026,
# 10:00 CET"), not the United States' "Nov 24, 2026, 10:00 AM +0100" that Babel's plain "en" gives.
BABEL_LOCALES = {"en": "en_GB"}


class UnknownZone(ValueError):
    """A time zone name that is not in the IANA database (RELAIS_TIMEZONE)."""


def zone(name: str) -> tzinfo:
    """The IANA zone ``name`` ("Europe/Brussels"); refuses anything else with a clear message."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownZone(
            f"RELAIS_TIMEZONE={name!r} is not a known time zone: use an IANA name such as Europe/Brussels"
        ) from None


class _Registry:
    """The one zone of this registry, set once at start from the configuration (relais.setup).

    Kept here rather than passed around because e-mails are rendered deep inside the core's
    transactions (a receipt queued by the write that counts a download), where only the
    database is at hand; there is one registry, so one zone, per process.
    """

    def __init__(self):
        self.zone = zone(DEFAULT_ZONE)


_registry = _Registry()


def use_zone(name: str) -> None:
    _registry.zone = zone(name)


def registry_zone() -> tzinfo:
    return _registry.zone


def _locale(language: str) -> Locale:
    return Locale.parse(BABEL_LOCALES.get(language, language))


def zone_name(moment, language: str, where: tzinfo | None = None) -> str:
    """The zone as the language abbreviates it at that moment (CET or CEST, MEZ or MESZ); where
    the language has no abbreviation, its offset from UTC ("UTC+01:00" in French)."""
    where = where or registry_zone()
    locale = _locale(language)
    name = format_datetime(moment, "z", tzinfo=where, locale=locale)
    if re.fullmatch(r"[+-]\d{4}", name):  # Babel's bare "+0100": say it the language's way
        name = format_datetime(moment, "ZZZZ", tzinfo=where, locale=locale)
    return name


def show(iso: str | None, language: str, date: str = "medium", seconds: bool = False,
         where: tzinfo | None = None) -> str:
    """An ISO UTC time as the language writes it, in the registry's zone, with the zone's name:
    "24 Nov 2026, 10:00 CET", "24 nov. 2026, 10:00 UTC+01:00", "24.11.2026, 10:00 MEZ".

    ``date`` is Babel's date style ("medium" for pages, "long" for e-mails); ``seconds`` adds
    them (the audit trail and a share's activity, where order within a minute matters).
    """
    if not iso:
        return ""
    where = where or registry_zone()
    moment = clock.parse(iso)
    if moment.tzinfo is None:  # stored times are UTC; never let a bare one pass for local time
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(where)
    locale = _locale(language)
    time_pattern = locale.time_formats["medium" if seconds else "short"].pattern
    day = format_date(moment, date, locale=locale)
    hour = format_time(moment, time_pattern, tzinfo=where, locale=locale)
    # The language's own way of joining a date and a time ("{1}, {0}", "{1} 'om' {0}"...).
    joined = str(locale.datetime_formats[date]).replace("'", "")
    return f"{joined.format(hour, day)} {zone_name(moment, language, where)}"
