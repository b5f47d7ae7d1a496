"""E-mail texts: Jinja2 templates in ``templates/email/``, in the recipient's language.

Each mail is three templates: ``<name>.subject.txt``, ``<name>.txt`` (plain text, the link
spelled out) and ``<name>.html`` (a button plus the same link written out, for mail programs
that block buttons). Only the HTML is auto-escaped.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from babel.numbers import format_decimal
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape

from relais import i18n, times

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "email"
@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), extensions=["jinja2.ext.i18n"],
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )

    @pass_context
    def gettext(ctx, message):
        return i18n.translations(ctx["lang"]).gettext(message)

    @pass_context
    def ngettext(ctx, singular, plural, n):
        return i18n.translations(ctx["lang"]).ngettext(singular, plural, n)

    @pass_context
    def when(ctx, iso: str) -> str:
        """A date and time in the recipient's language, in the registry's zone, with its name
        ("24 november 2026, 10:00 CET"): a mail is read anywhere, so the hour says its zone."""
        return times.show(iso, ctx["lang"], date="long")

    @pass_context
    def size(ctx, n: int) -> str:
        return i18n.human_size(ctx["lang"], n)

    @pass_context
    def number(ctx, n) -> str:
        return format_decimal(n, locale=ctx["lang"])

    env.install_gettext_callables(gettext, ngettext, newstyle=True)
    env.globals.update(when=when, size=size, number=number)
    return env


def render(name: str, lang: str, **context) -> tuple[str, str, str]:
    """(subject, text, html) of mail ``name`` in ``lang``."""
    env = environment()
    context = {**context, "lang": lang}
    subject = " ".join(env.get_template(f"{name}.subject.txt").render(context).split())
    return subject, env.get_template(f"{name}.txt").render(context), env.get_template(f"{name}.html").render(context)
