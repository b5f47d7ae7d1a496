"""Logging in and out, one-time login links, and choosing a password."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from litestar import Request, Response, Router, get, post, route
from litestar.response import Redirect

from relais import auth, i18n, passwords, terms, users
from relais.i18n import N_
from views import common
from views import two_factor as two_factor_views
from views import partners as partner_views


PASSWORD_ERRORS = {
    "too_short": N_("Choose a password of at least 15 characters."),
    "too_long": N_("Passwords are at most 1,024 characters."),
    "too_common": N_("This password is too common or too easy to guess. A few unrelated words make a strong one."),
    "mismatch": N_("The two new passwords are not the same."),
    "wrong_current": N_("Your current password is not correct."),
}


TERMS_CHANGED = two_factor_views.TERMS_CHANGED  # the login's, the code's and the one-time link's pages


@dataclass
class LoginForm:
    email: str = ""
    password: str = ""
    next: str = ""
    language: str = ""  # a language chosen on the form itself, if a form offers one
    terms_version: str = ""  # the version the page showed: logging in accepts it, and only it


@dataclass
class ContinueForm:
    terms_version: str = ""  # the version the one-time link's page showed


@dataclass
class PasswordForm:
    current_password: str = ""
    new_password: str = ""
    confirm_password: str = ""


def chosen_language(request: Request, field: str = "") -> str | None:
    """The language the person chose (a form's field, else the cookie the language switch sets),
    to be stored on their account at login; None when they chose none. Never the browser's
    Accept-Language alone: logging in from a colleague's English browser must not switch a
    Dutch person's e-mails to English."""
    for choice in (field, request.cookies.get(common.LANGUAGE_COOKIE)):
        if choice in i18n.LANGUAGES:
            return choice
    return None


def _login_page(request: Request, status: int = 200, error: str = "", email: str = "", next: str = "") -> Response:
    version = common.db(request).read_sync(terms.current_version)
    return common.render(
        request, "auth/login.html", status_code=status, error=error, email=email, next=common.safe_next(next, ""),
        terms_version=version, logged_out="logged_out" in request.query_params,
    )


@get("/login", name="login", sync_to_thread=True)
def show_login(request: Request, next: str = "") -> Response:
    if common.current_user(request) is not None:
        return Redirect(common.safe_next(next), status_code=303)
    return _login_page(request, next=next)


# Async, so that a flood of logins waiting for argon2 holds no worker thread (see auth.login).
@post("/login")
async def submit_login(request: Request, data: Annotated[LoginForm, common.FORM]) -> Response:
    """Check the password; on success a fresh session id (never the one the browser came with)."""
    if (version := await common.db(request).read(terms.changed_since, data.terms_version)) is not None:
        # The page was opened before an admin published new terms: it asked for the old version.
        error = common.gettext(request, TERMS_CHANGED, version=version)
        return await common.in_thread(_login_page, request, 409, error, data.email[:254], data.next)
    if (old := request.scope.get("auth")) is not None:
        await common.in_thread(auth.logout, common.db(request), common.who(request), old)
    result = await auth.login(common.db(request), common.hasher(request), common.who(request), data.email, data.password,
                              chosen_language(request, data.language), terms.shown(data.terms_version))
    if result.outcome is auth.Outcome.TERMS_CHANGED:  # published during the password's check
        error = common.gettext(request, TERMS_CHANGED, version=result.terms_version)
        return await common.in_thread(_login_page, request, 409, error, data.email[:254], data.next)
    if result.outcome is auth.Outcome.OK:
        response = Redirect(common.safe_next(data.next), status_code=303)
        common.set_session_cookie(response, result.session_token, request.app.state.config.cookie_secure)
        return response
    if result.outcome is auth.Outcome.SECOND_STEP:  # the code comes next (views.two_factor)
        return two_factor_views.to_second_step(request, result.pending_token, data.next)
    if result.outcome is auth.Outcome.LOCKED:
        minutes = max(1, math.ceil(result.retry_after / 60))
        error = common.ngettext(
            request, "Too many failed attempts. Try again in %(num)s minute.",
            "Too many failed attempts. Try again in %(num)s minutes.", minutes,
        )
        return await common.in_thread(_login_page, request, 429, error, data.email[:254], data.next)
    if result.outcome is auth.Outcome.EXPIRED:  # the right password, but a partner's access has ended
        return await common.in_thread(partner_views.expired_page, request, result.user)
    if result.outcome is auth.Outcome.TOO_LONG:
        message = PASSWORD_ERRORS["too_long"]
        return await common.in_thread(_login_page, request, 400, common.gettext(request, message), data.email[:254], data.next)
    error = common.gettext(request, "The e-mail address or the password is not correct.")
    return await common.in_thread(_login_page, request, 401, error, data.email[:254], data.next)


@post("/logout", name="logout", sync_to_thread=True)
def submit_logout(request: Request) -> Redirect:
    session = request.scope.get("auth")
    if session is not None:
        auth.logout(common.db(request), common.who(request), session)
    response = Redirect("/login?logged_out", status_code=303)
    common.clear_session_cookie(response, request.app.state.config.cookie_secure)
    return response


def _link_page(request: Request, token: str, status: int = 200, error: str = "") -> Response:
    user = users.peek_login_link(common.db(request), token)
    if user is None:
        return common.render(request, "auth/link_invalid.html", status_code=404)
    return common.render(request, "auth/link.html", status_code=status, email=user.email, token=token, error=error,
                         terms_version=common.db(request).read_sync(terms.current_version))


@route("/login/link/{token:str}", http_method=["GET", "HEAD"], name="login_link", sync_to_thread=True)
def show_login_link(request: Request, token: str) -> Response:
    """Opening the link only shows a button: mail scanners that follow links must not use it up."""
    return _link_page(request, token)


@post("/login/link/{token:str}", sync_to_thread=True)
def use_login_link(request: Request, token: str, data: Annotated[ContinueForm, common.FORM]) -> Response:
    """Continue: the link is used up and the session (or the code's step) opens, in one write that
    also checks the terms the page showed are still in force; if not, the page again, link unused."""
    database, who = common.db(request), common.who(request)
    result = auth.login_by_link(database, who, token, chosen_language(request), terms.shown(data.terms_version))
    if result.outcome is auth.Outcome.INVALID:
        return common.render(request, "auth/link_invalid.html", status_code=404)
    if result.outcome is auth.Outcome.TERMS_CHANGED:
        return _link_page(request, token, 409, common.gettext(request, TERMS_CHANGED, version=result.terms_version))
    if (old := request.scope.get("auth")) is not None:
        auth.logout(database, who, old)
    if result.outcome is auth.Outcome.SECOND_STEP:
        return two_factor_views.to_second_step(request, result.pending_token, "/account/password")
    response = Redirect("/account/password", status_code=303)
    common.set_session_cookie(response, result.session_token, request.app.state.config.cookie_secure)
    return response


@get("/account/password", name="password", guards=[common.requires_login], opt={"password_change": True}, sync_to_thread=True)
def show_password(request: Request) -> Response:
    return common.render(request, "auth/password.html", error="")


@post("/account/password", guards=[common.requires_login], opt={"password_change": True}, sync_to_thread=True)
def submit_password(request: Request, data: Annotated[PasswordForm, common.FORM]) -> Response:
    """Change the password; a link-login (must_change_password) needs no current password."""
    error = ""
    if len(data.new_password) > passwords.MAX_LENGTH or len(data.current_password) > passwords.MAX_LENGTH:
        error = "too_long"
    elif data.new_password != data.confirm_password:
        error = "mismatch"
    else:
        try:
            auth.change_password(common.db(request), common.hasher(request), common.who(request), request.scope["auth"],
                                 data.new_password, data.current_password)
        except passwords.PasswordRejected as exc:
            error = exc.reason
    if error:
        message = common.gettext(request, PASSWORD_ERRORS[error])
        return common.render(request, "auth/password.html", status_code=400, error=message)
    return Redirect("/?notice=password_changed", status_code=303)


# A Router (not a bare list): Litestar 2.25 registers the first of two handlers sharing a path
# twice when they sit directly on the app, wrapping a sync_to_thread handler in a second thread
# hop that returns a coroutine instead of a response.
routes = [Router(path="/", route_handlers=[show_login, submit_login, submit_logout, show_login_link, use_login_link, show_password, submit_password])]
