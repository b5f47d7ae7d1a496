"""Pages for everyone: home, terms of use, language switch, health check; template helpers."""

from __future__ import annotations

import os
from pathlib import Path

from babel.numbers import format_decimal
from jinja2 import pass_context
from litestar import Request, Router, Response, get
from litestar.response import Redirect

from relais import health, i18n, request_staff, terms, times, users
from views import common


@get("/", name="home", sync_to_thread=True)
def show_home(request: Request) -> Response:
    """Staff land on their work, partners on their space; anyone else is asked to log in."""
    user = common.current_user(request)
    if user is None:
        return Redirect("/login", status_code=303)
    if user.must_change_password:
        raise common.PasswordChangeRequired()
    if common.must_enrol(request):
        raise common.TwoFactorRequired()
    if user.role == "partner":  # partners have their own page, never the staff's
        notice = "?notice=password_changed" if request.query_params.get("notice") == "password_changed" else ""
        return Redirect(f"/space{notice}", status_code=303)
    # What waits for this staff member: files sent through their requests, soonest deadline first.
    waiting = request_staff.waiting_for(common.db(request), user.id) if user.is_staff else []
    return common.render(request, "pages/home.html", waiting=waiting)


@get("/terms", name="terms", sync_to_thread=True)
def show_terms(request: Request) -> Response:
    current = common.db(request).read_sync(terms.current, common.lang(request))
    return common.render(request, "pages/terms.html", terms=current)


@get("/language/{code:str}", name="language", sync_to_thread=True)
def switch_language(request: Request, code: str, next: str | None = None) -> Redirect:
    """Remember the chosen language in a cookie and go back where the person was; for someone
    logged in, also on their account, so that the e-mails Relais sends them use it too."""
    response = Redirect(common.safe_next(next), status_code=303)
    if code in i18n.LANGUAGES:
        response.set_cookie(
            common.LANGUAGE_COOKIE, code, path="/", secure=request.app.state.config.cookie_secure,
            httponly=True, samesite="lax", max_age=365 * 24 * 3600,
        )
        user = common.current_user(request)
        # A GET that changes the account: only from our own pages. The session cookie (SameSite=Lax)
        # also rides on a link from another site, so Fetch Metadata, which every current browser
        # sends and a page cannot forge, is the CSRF check here. An older browser that sends none
        # gets the cookie only; its login (a POST with a CSRF token) stores the language then.
        if user is not None and request.headers.get("sec-fetch-site") == "same-origin":
            users.set_language(common.db(request), common.who(request), user.id, code)
    return response


# Async, its checks on the database's own reader threads: a crowded worker pool (a flood of
# requests, transfers) must not make the instance look unhealthy to its monitor.
@get("/healthz", name="healthz")
async def health_check(request: Request) -> Response:
    """200 when the database answers and the data folder takes a write; 503 otherwise."""
    try:
        await common.db(request).read(health.check, request.app.state.config.tmp_dir / f".healthz-{os.getpid()}")
    except Exception as exc:  # any failure means "not healthy"; say which part
        return Response({"status": "error", "detail": type(exc).__name__}, status_code=503)
    return Response({"status": "ok"})


FAVICON = Path(__file__).resolve().parent.parent / "static" / "favicon.ico"


@get("/favicon.ico", name="favicon", sync_to_thread=True)
def favicon() -> Response:
    """Pages name /static/favicon.svg; browsers and tools that ask here anyway get the same icon."""
    return Response(FAVICON.read_bytes(), media_type="image/x-icon")


def template_globals() -> dict:
    """Functions every template may call; each reads the request from the template context."""

    @pass_context
    def page_lang(ctx) -> str:
        return context_lang(ctx)

    @pass_context
    def current_user(ctx):
        return common.current_user(ctx["request"]) if "request" in ctx else None

    @pass_context
    def language_links(ctx) -> list[dict]:
        request = ctx["request"]
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return [
            {"code": code, "name": i18n.NAMES[code], "href": f"/language/{code}?next={_quote(here)}"}
            for code in i18n.LANGUAGES
        ]

    @pass_context
    def size(ctx, n: int) -> str:
        return common.human_size(context_lang(ctx), n)

    @pass_context
    def number(ctx, n: int) -> str:
        return format_decimal(n, locale=context_lang(ctx))

    @pass_context
    def when(ctx, iso: str | None, seconds: bool = False) -> str:
        """A stored (UTC) time in the registry's zone, with its name, as the page's language
        writes it; the one way every page shows a time (e-mails have the same, relais.emails)."""
        return times.show(iso, context_lang(ctx), seconds=seconds)

    @pass_context
    def must_enrol(ctx) -> bool:
        return common.must_enrol(ctx["request"]) if "request" in ctx else False

    return {"page_lang": page_lang, "current_user": current_user, "must_enrol": must_enrol, "language_links": language_links, "size": size,
            "when": when, "number": number}


def context_lang(ctx) -> str:
    """The language of the page being rendered (an e-mail passes ``lang`` itself)."""
    return ctx["lang"] if "lang" in ctx else common.lang(ctx["request"])


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="/")


# A Router (not a bare list): Litestar 2.25 registers the first of two handlers sharing a path
# twice when they sit directly on the app, wrapping a sync_to_thread handler in a second thread
# hop that returns a coroutine instead of a response.
routes = [Router(path="/", route_handlers=[show_home, show_terms, switch_language, health_check, favicon])]
