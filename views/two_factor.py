"""The second factor (relais.two_factor): the code after the password, enrolment, and the
account's own two-factor page."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from litestar import Request, Response, Router, get, post
from litestar.response import Redirect

from relais import auth, terms, two_factor, two_factor_qr
from relais.i18n import N_
from views import common

# The pending login between the password and the code: a cookie for minutes, never a session.
PENDING_COOKIE = "__Host-relais_login_step"
ENROL = {"two_factor_enrol": True}  # reachable while the account must still enrol

ERRORS = {
    "wrong_code": N_("This code is not correct, or was already used. Type the code your app shows now."),
    "required": N_("Your account must log in with a second factor: it cannot be turned off."),
    "not_enrolled": N_("Two-factor login is not set up for your account."),
    "already": N_("Two-factor login is already set up for your account."),
}
STEP_ENDED = N_("The time to type the code has run out, or too many codes were wrong. Log in again.")
WRONG_CODE = ERRORS["wrong_code"]
TERMS_CHANGED = N_("The terms of use changed while this page was open: version %(version)s is now in force. Read it, then log in again.")  # outside gettext calls: the extractor would take the key for a text


@dataclass
class CodeForm:
    code: str = ""
    recovery_code: str = ""
    next: str = ""
    terms_version: str = ""  # the version the code's page showed: the login accepts it, and only it


def to_second_step(request: Request, pending_token: str, next: str) -> Response:
    """After a right password, for an account with a factor: on to the code's page."""
    target = common.safe_next(next, "")
    response = Redirect("/login/code" + (f"?next={_quote(target)}" if target else ""), status_code=303)
    response.set_cookie(PENDING_COOKIE, pending_token, path="/", secure=request.app.state.config.cookie_secure,
                        httponly=True, samesite="strict", max_age=two_factor.PENDING_MINUTES * 60)
    return response


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="/")


def _clear_pending(response: Response, request: Request) -> None:
    response.set_cookie(PENDING_COOKIE, "", path="/", secure=request.app.state.config.cookie_secure,
                        httponly=True, samesite="strict", max_age=0)


def _code_page(request: Request, status: int = 200, error: str = "", email: str = "", next: str = "",
               ended: bool = False) -> Response:
    response = common.render(request, "auth/code.html", status_code=status, error=error, email=email,
                             next=common.safe_next(next, ""), ended=ended,
                             terms_version=common.db(request).read_sync(terms.current_version))
    if ended:
        _clear_pending(response, request)
    return response


@get("/login/code", name="login_code", sync_to_thread=True)
def show_code(request: Request, next: str = "") -> Response:
    email = two_factor.pending_email(common.db(request), request.cookies.get(PENDING_COOKIE))
    if email is None:
        return Redirect("/login", status_code=303)
    return _code_page(request, email=email, next=next)


@post("/login/code", sync_to_thread=True)
def submit_code(request: Request, data: Annotated[CodeForm, common.FORM]) -> Response:
    """The code (or a recovery code) after the password: the session opens only now."""
    database, pending = common.db(request), request.cookies.get(PENDING_COOKIE)
    email = two_factor.pending_email(database, pending) or ""
    result = auth.second_step(database, request.app.state.two_factor_key, common.who(request), pending,
                              (data.code or data.recovery_code).strip(), terms.shown(data.terms_version))
    if result.outcome is auth.Outcome.TERMS_CHANGED:  # published while this page was open: ask again
        error = common.gettext(request, TERMS_CHANGED, version=result.terms_version)
        return _code_page(request, 409, error, email, data.next)
    if result.outcome is auth.Outcome.OK:
        response = Redirect(common.safe_next(data.next), status_code=303)
        _clear_pending(response, request)
        common.set_session_cookie(response, result.session_token, request.app.state.config.cookie_secure)
        return response
    if result.outcome is auth.Outcome.LOCKED:
        minutes = max(1, math.ceil(result.retry_after / 60))
        error = common.ngettext(
            request, "Too many failed attempts. Try again in %(num)s minute.",
            "Too many failed attempts. Try again in %(num)s minutes.", minutes,
        )
        return _code_page(request, 429, error, email, data.next, ended=not email)
    if result.outcome is auth.Outcome.STEP_ENDED:
        return _code_page(request, 401, common.gettext(request, STEP_ENDED), ended=True)
    return _code_page(request, 401, common.gettext(request, WRONG_CODE), email, data.next)


# -- the account's own page ----------------------------------------------------------------------

@dataclass
class ConfirmCodeForm:
    code: str = ""


def _account_page(request: Request, status: int = 200, error: str = "") -> Response:
    database, user = common.db(request), common.current_user(request)
    return common.render(
        request, "auth/two_factor.html", status_code=status, error=error,
        factor=two_factor.status(database, user.id),
        required=database.read_sync(two_factor.required, user.role),
    )


@get("/account/two-factor", name="account_two_factor", guards=[common.requires_login], sync_to_thread=True)
def show_account(request: Request) -> Response:
    return _account_page(request)


def _enrol_page(request: Request, status: int = 200, error: str = "") -> Response:
    user = common.current_user(request)
    try:
        secret = two_factor.enrolment_secret(common.db(request), request.app.state.two_factor_key,
                                             common.who(request), user)
    except two_factor.TwoFactorRefused:  # already in force
        return Redirect("/account/two-factor", status_code=303)
    title = common.gettext(request, "QR code to scan with your authenticator app")
    return common.render(
        request, "auth/two_factor_enrol.html", status_code=status, error=error,
        qr=two_factor_qr.qr_svg(two_factor_qr.provisioning_uri(user, secret), title), key=two_factor_qr.grouped(secret),
        forced=common.must_enrol(request), issuer=two_factor_qr.ISSUER,
    )


@get("/account/two-factor/enrol", name="two_factor_enrol", guards=[common.requires_login], opt=ENROL,
     sync_to_thread=True)
def show_enrol(request: Request) -> Response:
    """The QR code and the key to type, and the field for the first code that confirms them."""
    return _enrol_page(request)


@post("/account/two-factor/enrol", guards=[common.requires_login], opt=ENROL, sync_to_thread=True)
def submit_enrol(request: Request, data: Annotated[ConfirmCodeForm, common.FORM]) -> Response:
    try:
        codes = two_factor.confirm(common.db(request), request.app.state.two_factor_key, common.who(request),
                                   common.current_user(request), data.code.strip()[:64])
    except two_factor.TwoFactorRefused as exc:
        if exc.reason != "wrong_code":
            return Redirect("/account/two-factor", status_code=303)
        return _enrol_page(request, 400, common.gettext(request, WRONG_CODE))
    request.app.state.shown_once.put(_once_key(request), codes)
    return Redirect("/account/two-factor/recovery-codes", status_code=303)


def _once_key(request: Request) -> tuple:
    # Only the login session that made the codes may see them, and only once.
    return ("recovery-codes", request.scope["auth"].id_hash)


@get("/account/two-factor/recovery-codes", guards=[common.requires_login], sync_to_thread=True)
def show_recovery_codes(request: Request) -> Response:
    """The recovery codes, once: a second visit finds them gone."""
    codes = request.app.state.shown_once.take(_once_key(request))
    if not codes:
        return Redirect("/account/two-factor", status_code=303)
    return common.render(request, "auth/recovery_codes.html", codes=codes)


@post("/account/two-factor/recovery-codes", guards=[common.requires_login], sync_to_thread=True)
def make_recovery_codes(request: Request) -> Response:
    """Ten new recovery codes; the old ones stop working."""
    try:
        codes = two_factor.new_recovery_codes(common.db(request), common.who(request), common.current_user(request))
    except two_factor.TwoFactorRefused as exc:
        return _account_page(request, 400, common.gettext(request, ERRORS[exc.reason]))
    request.app.state.shown_once.put(_once_key(request), codes)
    return Redirect("/account/two-factor/recovery-codes", status_code=303)


@post("/account/two-factor/disable", guards=[common.requires_login], sync_to_thread=True)
def disable(request: Request, data: Annotated[ConfirmCodeForm, common.FORM]) -> Response:
    """Turn two-factor login off, on a current code; only where it is not required."""
    try:
        two_factor.disable(common.db(request), request.app.state.two_factor_key, common.who(request),
                           common.current_user(request), data.code.strip()[:64])
    except two_factor.TwoFactorRefused as exc:
        return _account_page(request, 400, common.gettext(request, ERRORS[exc.reason]))
    return Redirect("/account/two-factor?off", status_code=303)


routes = [Router(path="/", route_handlers=[show_code, submit_code, show_account, show_enrol, submit_enrol,
                                           show_recovery_codes, make_recovery_codes, disable])]
