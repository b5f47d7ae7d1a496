"""Request plumbing: who is logged in (session middleware) and the headers every response carries."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from anyio import to_thread
from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import NotFoundException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from relais import auth, two_factor
from views import common

# No inline script or style anywhere: htmx is configured through a <meta> tag and our own
# script is a file. 'self' only; form-action pins where forms may post.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    # Link tokens live in URLs: never leak them to another site through the Referer header.
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


# SQLite's integers are 64-bit, while a ``{id:int}`` path parameter takes any number of digits:
# binding a larger one makes the sqlite3 module raise OverflowError, a 500. No row has such an id.
ROW_ID_RANGE = range(-(2**63), 2**63)


async def no_oversized_ids(request: Request) -> None:
    """Refuse, with the 404 page, a path whose ``int`` parameter no row could have.

    An app-wide ``before_request`` hook rather than an OverflowError handler: it runs on every
    route, now and later, after its guards and before the handler reads the body or the database,
    so nothing is half-done; and an OverflowError from anything else stays a bug (a 500, logged)."""
    if any(type(value) is int and value not in ROW_ID_RANGE for value in request.path_params.values()):
        raise NotFoundException()


def session_middleware(app: ASGIApp) -> ASGIApp:
    """Put the logged-in user (or None) in ``scope['user']`` and the session in ``scope['auth']``;
    ``scope['two_factor_enrol']``: the account must set up a second factor before anything else."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["user"] = None
            scope["auth"] = None
            scope["two_factor_enrol"] = False
            token = _cookie(scope, common.SESSION_COOKIE)
            if token:
                from litestar import Request

                request = Request(scope)
                session, enrol = await to_thread.run_sync(_resolve, common.db(request), token, common.who(request))
                if session is not None:
                    scope["user"] = session.user
                    scope["auth"] = session
                    scope["two_factor_enrol"] = enrol
        await app(scope, receive, send)

    return middleware


def _resolve(database, token: str, who) -> tuple[auth.Session | None, bool]:
    """The session, and whether its account must enrol a second factor first (in one thread hop)."""
    session = auth.resolve_session(database, token, who)
    return session, session is not None and two_factor.must_enrol(database, session.user)


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return v
    return None


async def security_headers(message: Message, scope: Scope) -> None:
    """before_send hook: runs for every response, error pages and 404s included."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value
    # Static files carry their version in the name and may be cached; nothing else may, since
    # every other page can show health data or a token.
    if scope.get("path", "").startswith("/static/") or scope.get("path") == "/favicon.ico":
        headers["cache-control"] = "public, max-age=86400"
    else:
        headers["cache-control"] = "no-store"


# A urlencoded body larger than this is not read here: Litestar refuses it (413) before parsing.
_FORM_LIMIT = 2 * 1024 * 1024


def strict_utf8_middleware(app: ASGIApp) -> ASGIApp:
    """Text that arrives percent-encoded (the query string, urlencoded form bodies) must be UTF-8.

    Litestar decodes such text leniently (invalid bytes become U+FFFD, so a name or an e-mail
    address could be stored with them), while it decodes multipart fields strictly (raising
    UnicodeDecodeError from deep in its form parser, which was a 500 and a stack trace). Both
    end the same way: a UnicodeDecodeError, raised here for the lenient ones, that
    ``views.errors.bad_encoding`` answers with a 400 page.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            _check_urlencoded(scope.get("query_string", b""))
            if _content_type(scope) == b"application/x-www-form-urlencoded":
                receive = await _checked_body(receive)
        await app(scope, receive, send)

    return middleware


def _check_urlencoded(data: bytes) -> None:
    """Raise UnicodeDecodeError unless every name and value decodes to UTF-8."""
    if not data:
        return
    for pair in data.split(b"&"):
        for item in pair.split(b"=", 1):
            unquote_to_bytes(item.replace(b"+", b" ")).decode("utf-8")


def _content_type(scope: Scope) -> bytes:
    for key, value in scope.get("headers", []):
        if key == b"content-type":
            return value.split(b";", 1)[0].strip().lower()
    return b""


async def _checked_body(receive: Receive) -> Receive:
    """Read a (small) urlencoded body, check it, and hand it on unchanged."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if not message.get("more_body") or size > _FORM_LIMIT:
            break
    if size <= _FORM_LIMIT:
        _check_urlencoded(b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request"))
    replay = iter(messages)

    async def receive_again() -> Message:
        message = next(replay, None)
        return message if message is not None else await receive()

    return receive_again
