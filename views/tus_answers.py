"""Answers a tus client understands, for every tus router (a staff member's /tus/, a request
link's /r/<token>/tus/): a status with ``Tus-Resumable`` and a short text in the person's
language, which the uploader shows; and the error handlers that replace the app's HTML error
pages and login redirect on those routers: no session is 401, a CSRF failure 403, a full disk
507, never a redirect.
"""

from __future__ import annotations

import logging
import sqlite3
from urllib.parse import quote

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException

from relais import logs, space
from relais.i18n import N_
from views import common, errors, framework

log = logging.getLogger("relais")

TUS_VERSION = "1.0.0"
STALE_PAGE = N_("This form was open too long or came from another site. Reload the page and try again.")
LOGGED_OUT = N_("Your session has ended. Log in again, then add the same file: the upload goes on where it stopped.")


def respond(status: int, headers: dict | None = None, text: str = "") -> Response:
    return Response(content=text.encode("utf-8"), status_code=status, media_type="text/plain",
                    headers={"Tus-Resumable": TUS_VERSION, **(headers or {})})


def say(request: Request, status: int, message: str, **variables) -> Response:
    """A response whose text (marked with N_), shown to the person by the uploader, is in their language.

    The text is in the body and, percent-encoded UTF-8, in ``Relais-Message``: an answer to HEAD
    (the uploader's first request when it resumes) has no body."""
    text = common.gettext(request, message, **variables)
    return respond(status, {"Relais-Message": quote(text, safe=" ")}, text=text)


# -- errors as tus clients expect them --------------------------------------------------------------

def _logged_out(request: Request, exc: NotAuthorizedException) -> Response:
    return say(request, 401, LOGGED_OUT)


def _refused_access(request: Request, exc: PermissionDeniedException) -> Response:
    return say(request, 403, STALE_PAGE if framework.is_csrf_failure(exc) else errors.MESSAGES[403][1])


def _password_change(request: Request, exc: common.PasswordChangeRequired) -> Response:
    return say(request, 403, N_("Choose a new password first (on the page that asks for it), then try again."))


def _two_factor(request: Request, exc: common.TwoFactorRequired) -> Response:
    return say(request, 403, N_("Set up your second factor first (on the page that asks for it), then try again."))


def _http_error(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    _, message = errors.MESSAGES.get(status, errors.MESSAGES[400 if status < 500 else 500])
    return say(request, status, message)


def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, logs.redact(request.url.path))
    return say(request, 500, errors.MESSAGES[500][1])


def _storage_error(request: Request, exc: Exception) -> Response:
    """A full disk (an upload that does not fit beside the database's reserve, see relais.space)."""
    if not space.is_full(exc):
        return _server_error(request, exc)
    log.error("disk full on %s %s: %s", request.method, logs.redact(request.url.path), exc)
    return say(request, 507, errors.MESSAGES[507][1])


def _bad_encoding(request: Request, exc: UnicodeDecodeError) -> Response:
    return say(request, 400, errors.BAD_ENCODING)


# Closest layer wins: these replace the app's HTML error pages and login redirect on a tus router.
EXCEPTION_HANDLERS = {
    NotAuthorizedException: _logged_out, PermissionDeniedException: _refused_access,
    common.PasswordChangeRequired: _password_change, common.TwoFactorRequired: _two_factor, HTTPException: _http_error,
    Exception: _server_error,
    OSError: _storage_error, sqlite3.Error: _storage_error, UnicodeDecodeError: _bad_encoding,
}
