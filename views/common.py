"""What every view shares: who is asking, guards, rendering, safe redirects, cookies.

Views stay thin: they read input, call the core (``relais.*``) and return one of these.
"""

from __future__ import annotations

import functools
import html
import ipaddress
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from anyio import to_thread
from litestar import Request, Response
from litestar.enums import MediaType, RequestEncodingType
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Body
from litestar.response import Redirect

from relais import audit, i18n, logs, paging
from relais.db import Database
from relais.passwords import Hasher
from relais.refusal import Size
from relais.users import User
from views import framework

SESSION_COOKIE = "__Host-relais_session"
LANGUAGE_COOKIE = "__Host-relais_lang"


# ``data: Annotated[SomeForm, FORM]``: a plain HTML form, missing fields taking the dataclass defaults.
FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


@dataclass
class ConfirmForm:
    """What destroys for good is done only by a POST carrying ``confirm=yes``, which only the
    confirm page (the GET of the same action, naming what will be lost) sends. Without it the
    action answers with a redirect to that page and changes nothing."""

    confirm: str = ""

    @property
    def given(self) -> bool:
        return self.confirm == "yes"


@dataclass
class ExtendForm:
    """How many days from now a link stays valid, as typed."""

    days: str = ""

    @property
    def whole_days(self) -> int | None:
        """A whole number of at most four digits, else None (the limit itself is the link's to check)."""
        return paging.whole(self.days.strip(), 4)


class PasswordChangeRequired(Exception):
    """The account must choose a new password before anything else."""


class TwoFactorRequired(Exception):
    """The account must have a second factor and has none: it enrols before anything else
    (``scope["two_factor_enrol"]``, set by :func:`views.middleware.session_middleware`)."""


# -- request facts -----------------------------------------------------------------------------

def db(connection: ASGIConnection) -> Database:
    return connection.app.state.db


def hasher(connection: ASGIConnection) -> Hasher:
    return connection.app.state.hasher


def client_ip(connection: ASGIConnection) -> str:
    """The client's address; X-Forwarded-For counts only when the peer is a trusted proxy.

    Read from the right: the last address that is not one of our proxies is the client, because
    anything left of it was written by the client itself and can be forged.
    """
    cached = connection.scope["state"].get("client_ip")
    if cached is not None:
        return cached
    peer = connection.client.host if connection.client else ""
    trusted = [ipaddress.ip_network(p, strict=False) for p in connection.app.state.config.trusted_proxies]

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    ip = peer
    if is_trusted(peer):
        hops = [h.strip() for h in ",".join(connection.headers.getall("x-forwarded-for", [])).split(",") if h.strip()]
        for hop in reversed(hops):
            ip = hop
            if not is_trusted(hop):
                break
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            ip = peer
    connection.scope["state"]["client_ip"] = ip
    return ip


def current_user(connection: ASGIConnection) -> User | None:
    return connection.scope.get("user")


def who(connection: ASGIConnection) -> audit.Who:
    user = current_user(connection)
    return audit.Who(
        actor=user.email if user else "anonymous",
        ip=client_ip(connection),
        user_agent=connection.headers.get("user-agent", "")[:500],
    )


def lang(connection: ASGIConnection) -> str:
    state = connection.scope["state"]
    if "lang" not in state:
        state["lang"] = i18n.negotiate(connection.cookies.get(LANGUAGE_COOKIE), connection.headers.get("accept-language"))
    return state["lang"]


def gettext(connection: ASGIConnection, message: str, **variables) -> str:
    """The message in the person's language; a :class:`~relais.refusal.Size` in it in their units."""
    language = lang(connection)
    shown = {name: human_size(language, value) if isinstance(value, Size) else value for name, value in variables.items()}
    return i18n.gettext(language, message, **shown)


def ngettext(connection: ASGIConnection, singular: str, plural: str, n: int, **variables) -> str:
    return i18n.ngettext(lang(connection), singular, plural, n, **variables)


# -- guards --------------------------------------------------------------------------------

def requires_login(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    user = current_user(connection)
    if user is None:
        raise NotAuthorizedException()
    if user.must_change_password and not handler.opt.get("password_change"):
        raise PasswordChangeRequired()
    # Then the second factor, where it is required (the password page comes first).
    if must_enrol(connection) and not user.must_change_password and not handler.opt.get("two_factor_enrol"):
        raise TwoFactorRequired()


def must_enrol(connection: ASGIConnection) -> bool:
    """Whether the person logged in must set up a second factor before any other page."""
    return bool(connection.scope.get("two_factor_enrol"))


async def requires_staff(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    requires_login(connection, handler)
    if not current_user(connection).is_staff:
        await _refuse_partner(connection)
        raise PermissionDeniedException()


async def requires_admin(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    requires_login(connection, handler)
    if not current_user(connection).is_admin:
        await _refuse_partner(connection)
        raise PermissionDeniedException()


def requires_partner(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """A partner's own pages (their space); staff have theirs."""
    requires_login(connection, handler)
    if current_user(connection).role != "partner":
        raise PermissionDeniedException()


async def _refuse_partner(connection: ASGIConnection) -> None:
    """A partner at a staff page: every such attempt goes into the trail (async, the write on the
    writer thread: guards run on the event loop)."""
    if current_user(connection).role == "partner":
        path = logs.redact(connection.url.path)[:500]
        await db(connection).write_async(
            lambda conn: audit.record(conn, who(connection), "partner.refused", path, method=connection.scope.get("method", "")))


# -- responses -----------------------------------------------------------------------------

def render(request: Request, template: str, status_code: int = 200, **context) -> Response:
    """The page as a finished HTML response, rendered here and now, in the caller's thread.

    Not a ``Template`` response: Litestar renders those on the event loop, where one long page
    stops every other request (``/healthz``, transfers) until it is done. Sync handlers run in a
    worker thread and render there; async handlers call :func:`render_async`. The context is the
    one Litestar gives a ``Template``: ``request`` (which the template helpers and ``csrf_token()``
    read) and ``csrf_input``.
    """
    token = framework.page_csrf_token(request)  # the middleware's, or on a route it skips the cookie's
    body = request.app.template_engine.get_template(template).render(
        **context, request=request,
        csrf_input=f'<input type="hidden" name="_csrf_token" value="{html.escape(token)}" />',
    )
    return Response(body, status_code=status_code, media_type=MediaType.HTML)


async def render_async(request: Request, template: str, status_code: int = 200, **context) -> Response:
    """:func:`render` for async handlers: the page is rendered in a worker thread."""
    return await to_thread.run_sync(functools.partial(render, request, template, status_code, **context))


def safe_next(value: str | None, default: str = "/") -> str:
    """Only a local path may follow a login: no scheme, no host, no '//' or '/\\' tricks."""
    if not value or len(value) > 2000:
        return default
    if any(c in value for c in "\\\r\n\t\x00") or not value.startswith("/") or value.startswith("//"):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def login_redirect(request: Request) -> Redirect:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect(f"/login?next={quote(target, safe='/')}", status_code=303)


def set_session_cookie(response, token: str, secure: bool) -> None:
    # No Max-Age: the cookie dies with the browser; the server enforces the real timeouts.
    response.set_cookie(SESSION_COOKIE, token, path="/", secure=secure, httponly=True, samesite="lax")


def clear_session_cookie(response, secure: bool) -> None:
    response.set_cookie(SESSION_COOKIE, "", path="/", secure=secure, httponly=True, samesite="lax", max_age=0)


async def in_thread(fn, *args):
    """Run blocking core work (database, disk, argon2) in a worker thread from an async handler."""
    return await to_thread.run_sync(functools.partial(fn, *args))


async def on_disk(connection: ASGIConnection, fn, *args):
    """Transfer disk work (writing, checkpointing, finishing, spooling a block) in a thread of the
    transfers' own limit (relais.workers), so that pages filling the shared pool never hold it up."""
    return await connection.app.state.workers.on_disk(fn, *args)


human_size = i18n.human_size  # the pages' name for it
