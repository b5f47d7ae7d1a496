"""Translations: gettext catalogues (Babel) for Dutch, French, English and German.

Catalogues live as ``translations/<lang>/LC_MESSAGES/messages.po`` and are compiled in memory
at start, so no compiled ``.mo`` file is ever stale or committed. English is the source text.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from babel import Locale, negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

LANGUAGES = ("nl", "fr", "en", "de")
DEFAULT = "en"
NAMES = {"nl": "Nederlands", "fr": "Français", "en": "English", "de": "Deutsch"}
TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"


@lru_cache(maxsize=None)
def translations(language: str) -> NullTranslations:
    po = TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == DEFAULT or not po.exists():
        return NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def gettext(language: str, message: str, **variables) -> str:
    text = translations(language).gettext(message)
    return text % variables if variables else text


def ngettext(language: str, singular: str, plural: str, n: int, **variables) -> str:
    text = translations(language).ngettext(singular, plural, n)
    return text % {"num": n, **variables}


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The person's choice (cookie) first, then the browser's preference, then English."""
    if cookie in LANGUAGES:
        return cookie
    if accept_language:
        preferred = []
        for part in accept_language.split(",")[:20]:
            tag, _, q = part.strip().partition(";q=")
            try:
                weight = float(q) if q else 1.0
            except ValueError:
                continue
            if tag and tag != "*":
                preferred.append((weight, tag.strip().replace("-", "_")))
        preferred = [tag for weight, tag in sorted(preferred, key=lambda p: -p[0]) if weight > 0]
        found = negotiate_locale(preferred, LANGUAGES, sep="_")
        if found is None:  # "fr_BE" against "fr": compare the language part
            found = next((tag.split("_")[0] for tag in preferred if tag.split("_")[0] in LANGUAGES), None)
        if found:
            return found
    return DEFAULT


def locale(language: str) -> Locale:
    return Locale.parse(language)


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated where it is shown."""
    return message


SIZE_UNITS = N_("B|KB|MB|GB|TB")  # one msgid for the pages, the mails and the uploader's script


def human_size(lang: str, size: int) -> str:
    """A size as people's file managers show it: counted in 1,024s (as Windows does, and as the size
    setting is given), with their language's decimals and unit symbols (``1.5 MB``, ``1,5 Mo``).
    Pages and mails show sizes through this one function, and the uploader's script the same way
    (``static/uploader.js``), so a mail and the page it points to say the same."""
    units = gettext(lang, SIZE_UNITS).split("|")
    value, i = float(size), 0
    while round(value, 1) >= 1024 and i < len(units) - 1:  # 1,048,575 bytes is "1 MB", not "1,024 KB"
        value /= 1024
        i += 1
    return f"{format_decimal(value, format='#,##0.#', locale=lang)}\u00a0{units[i]}"
