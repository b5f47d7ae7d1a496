"""What Relais relies on in Litestar beyond its documented API, behind names of our own.

Litestar 2.x documents none of these: the CSRF token's format, the text of the exception its
CSRF middleware raises, what ``request.stream()`` raises when the client goes away, and the
route option that keeps the CSRF middleware off a route, and where the middleware keeps the
page's token in the scope (``ScopeState.csrf_token``, which the templates' ``csrf_token()``
reads). ``tests/test_framework.py`` checks each against Litestar itself, so an upgrade that changes one fails there, loudly, and not in a
handler in production. Nothing else in views/ may import from ``litestar.middleware`` or read
``app.csrf_config``.
"""

from __future__ import annotations

import hmac

from litestar import Request
from litestar.exceptions import InternalServerException, PermissionDeniedException
from litestar.middleware.csrf import CSRF_SECRET_LENGTH, generate_csrf_hash  # noqa: F401 (CSRF_SECRET_LENGTH: for tests)
from litestar.types import Empty
from litestar.utils.scope.state import ScopeState

# ``request.stream()`` raises this ("client disconnected prematurely") when the client goes away
# mid-body: a 500 class, which a streaming handler must not let through as one.
ClientDisconnected = InternalServerException

# Route ``opt`` that keeps Litestar's CSRF middleware off a route (CSRFConfig.exclude_from_csrf_key's
# default): it would parse a whole multipart body to look for the token.
WITHOUT_CSRF_MIDDLEWARE = {"exclude_from_csrf": True}

_CSRF_FAILED = "CSRF token verification failed"  # the detail of the middleware's refusal


def is_csrf_failure(exc: PermissionDeniedException) -> bool:
    """Whether this 403 is the CSRF middleware's (a stale form), not a guard's (no access).
    Litestar raises no class of its own for it: its detail text is all that tells them apart."""
    return exc.detail == _CSRF_FAILED


def _decode(request: Request, value: str | None) -> bytes | None:
    """The token's secret part if its signature is the app's (the middleware's secret), else None."""
    if not value or len(value) <= CSRF_SECRET_LENGTH:
        return None
    raw, signature = value[:CSRF_SECRET_LENGTH], value[CSRF_SECRET_LENGTH:]
    expected = generate_csrf_hash(raw, request.app.csrf_config.secret)
    # bytes, not str: compare_digest refuses non-ASCII text, and the token comes from the client
    return raw.encode() if hmac.compare_digest(signature.encode(), expected.encode()) else None


def csrf_token_matches(request: Request, token: str) -> bool:
    """Litestar's double-submit check, for a route that checks its token itself: the form's token
    and the cookie both signed with the app's CSRF secret, and the same value."""
    ours = _decode(request, request.cookies.get(request.app.csrf_config.cookie_name))
    theirs = _decode(request, token)
    return ours is not None and theirs is not None and hmac.compare_digest(ours, theirs)


def page_csrf_token(request: Request) -> str:
    """The token for the forms of the page being rendered: the one the middleware put in the scope
    or, on a route it skips (a form upload answering with the page and its error), the cookie's
    when it is genuine; "" when there is neither (the next page that the middleware serves sets one).
    Without this a refused form upload showed forms with an empty token, each refused as stale."""
    state = ScopeState.from_scope(request.scope)
    if state.csrf_token is Empty or not state.csrf_token:
        cookie = request.cookies.get(request.app.csrf_config.cookie_name)
        if _decode(request, cookie) is None:
            return ""
        state.csrf_token = cookie  # what the template's csrf_token() reads
    return state.csrf_token
