"""Error pages: every failure gets a page in the person's language, never a stack trace."""

from __future__ import annotations

import logging
import sqlite3

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.enums import MediaType
from litestar.response import Redirect
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from relais import logs, space
from relais.i18n import N_
from views import common, framework

log = logging.getLogger("relais")

# status -> (title, explanation); both go through gettext in the template.
MESSAGES = {
    400: (N_("Bad request"), N_("The request could not be understood. Go back and try again.")),
    401: (N_("Please log in"), N_("You need to log in to see this page.")),
    403: (N_("Not allowed"), N_("You do not have access to this page.")),
    404: (N_("Page not found"), N_("This page does not exist, or the link is no longer valid.")),
    405: (N_("Not allowed"), N_("This action is not possible here.")),
    413: (N_("Too large"), N_("What you sent is larger than this page accepts.")),
    429: (N_("Too many attempts"), N_("Please wait a moment and try again.")),
    500: (N_("Something went wrong"), N_("The error has been logged. Nothing you sent was half-saved; please try again.")),
    507: (N_("Server storage full"), N_("The server could not store the file: its disk is full. Nothing was kept; please try again later.")),
}
# Bytes that are not UTF-8 where text is expected (see bad_encoding).
BAD_ENCODING = N_("The request contained text that is not valid UTF-8. Go back and try again.")


class _RenderedWhenSent(Response):
    """An error page that is rendered in a worker thread when it is sent.

    Litestar calls exception handlers on the event loop, synchronously, and turns what they return
    into an ASGI response there: a ``Template`` would be rendered on the loop, stopping every other
    request meanwhile (as pages did before :func:`views.common.render`). The ASGI response this
    one gives renders with :func:`views.common.render_async` first, then sends the finished page.
    """

    def __init__(self, request: Request, template: str, status_code: int, **context):
        super().__init__(None, status_code=status_code, media_type=MediaType.HTML)
        self._request, self._template, self._context = request, template, context

    def to_asgi_response(self, app, request: Request, **kwargs):
        async def send_page(scope, receive, send) -> None:
            page = await common.render_async(self._request, self._template, self.status_code, **self._context)
            page.headers.update(self.headers)
            page.cookies.extend(self.cookies)
            await page.to_asgi_response(app, request, **kwargs)(scope, receive, send)

        return send_page


def error_page(request: Request, status: int, title: str | None = None, message: str | None = None) -> Response:
    default_title, default_message = MESSAGES.get(status, MESSAGES[400 if status < 500 else 500])
    return _RenderedWhenSent(
        request, "errors/page.html", status, title=title or default_title, message=message or default_message,
        status=status,
    )


def not_authorized(request: Request, exc: NotAuthorizedException) -> Response:
    if request.method in ("GET", "HEAD") and not request.headers.get("hx-request"):
        return common.login_redirect(request)
    return error_page(request, 401)


def forbidden(request: Request, exc: PermissionDeniedException) -> Response:
    if framework.is_csrf_failure(exc):
        return error_page(
            request, 403, N_("Form expired"),
            N_("This form was open too long or came from another site. Reload the page and try again."),
        )
    return error_page(request, 403)


def password_change_required(request: Request, exc: common.PasswordChangeRequired) -> Response:
    return Redirect("/account/password", status_code=303)


def two_factor_required(request: Request, exc: common.TwoFactorRequired) -> Response:
    return Redirect("/account/two-factor/enrol", status_code=303)


def http_error(request: Request, exc: HTTPException) -> Response:
    return error_page(request, exc.status_code)


def bad_encoding(request: Request, exc: UnicodeDecodeError) -> Response:
    """Bytes that are not UTF-8 where text is expected (a form field, the query string): the
    client's mistake or an attack, never ours; one log line, no stack trace. Litestar raises this
    from its multipart parser, views.middleware.strict_utf8_middleware for urlencoded text."""
    log.info("invalid UTF-8 in %s %s", request.method, logs.redact(request.url.path))
    return error_page(request, 400, N_("Bad request"), BAD_ENCODING)


def storage_error(request: Request, exc: Exception) -> Response:
    """A full disk (ENOSPC, SQLITE_FULL) is the operator's to fix, not a bug: 507 and one log line."""
    if not space.is_full(exc):
        return server_error(request, exc)
    log.error("disk full on %s %s: %s", request.method, logs.redact(request.url.path), exc)
    return error_page(request, 507)


def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, logs.redact(request.url.path))
    return error_page(request, HTTP_500_INTERNAL_SERVER_ERROR)


handlers = {
    NotAuthorizedException: not_authorized,
    PermissionDeniedException: forbidden,
    common.PasswordChangeRequired: password_change_required,
    common.TwoFactorRequired: two_factor_required,
    HTTPException: http_error,
    UnicodeDecodeError: bad_encoding,
    OSError: storage_error,
    sqlite3.Error: storage_error,
    Exception: server_error,
}
