"""The guest's pages: a share's link (/s/...) and a one-time password link (/p/...).

No account here: the link token in the URL plus the password make the key. GET and HEAD only
show a form, so a mail scanner that follows the link neither uses it nor counts as a download.
``unlock_answer`` and ``unlocked`` serve every kind of link (a request's pages next); the rest
is a share's: its file list and its counted downloads (:mod:`relais.links.downloads`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Annotated

from anyio import CancelScope
from litestar import Request, Router, post, route
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Response, Template

from relais import links, passwords, shares, terms, users
from relais.i18n import N_
from relais.links import downloads as share_downloads
from views import common, downloads

SHARE = shares.KIND
# A page opened before an admin published new terms asked for the old version: ask again.
TERMS_CHANGED = N_("The terms of use changed while this page was open: version %(version)s is now in force. Read it below, then click Access again.")


@dataclass
class UnlockForm:
    password: str = ""
    terms_version: str = ""  # the version the page showed: Access accepts it, and only it


def _cookie_name(token: str) -> str:
    # One cookie per link, so two shares open in one browser don't push each other out;
    # named by a hash so the cookie jar never holds the link token itself.
    return "__Host-relais_link_" + hashlib.sha256(token.encode()).hexdigest()[:16]


def set_link_cookie(response: Response, request: Request, token: str, session_token: str) -> None:
    """The link session's cookie, for LINK_SESSION from now (the server slides the session itself:
    links.keep_alive); set again on a busy guest's pages, so that the browser keeps it as long."""
    response.set_cookie(_cookie_name(token), session_token, path="/", secure=request.app.state.config.cookie_secure,
                        httponly=True, samesite="lax", max_age=int(links.LINK_SESSION.total_seconds()))


def _invalid(request: Request) -> Template:
    """Unknown, expired, revoked, locked or deleted: the same page, so a guess learns nothing."""
    return common.render(request, "links/invalid.html", status_code=404)


def _files_page(request: Request, token: str, share: shares.Share) -> Template:
    database = common.db(request)
    owner = users.get(database, share.owner_id)
    listed = shares.share_files(database, share.id)
    return common.render(
        request, "links/files.html", token=token, share=share, owner=owner, files=listed,
        left=share_downloads.files_left(database, share, listed),
    )


def _password_page(request: Request, token: str, status: int = 200, error: str = "") -> Template:
    current = links.current_terms(common.db(request), common.lang(request))
    return common.render(request, "links/unlock.html", status_code=status, token=token, terms=current, error=error,
                         action=f"/s/{token}")


def _wait_minutes(seconds: int) -> int:
    return max(1, math.ceil(seconds / 60))


async def unlock_answer(request: Request, kind: links.Kind, token: str, form: UnlockForm, home: str, password_page):
    """The answer to a link's password and Access button, for every kind of link: a redirect to
    ``home`` with the link session's cookie, or ``password_page(status, error)`` saying what went
    wrong and, when the next try must wait, for how long (also in Retry-After).

    Async, like the staff login: the check awaits argon2 and the database in their own queues,
    so a flood of guesses holds no worker thread; only the page is rendered in one, briefly.
    Access accepts the terms the page showed: a page opened before newer terms were published
    is shown again with them (409), its password not tried; a publish during the password's
    check is caught inside the write that would open the session (``Unlock.TERMS_CHANGED``)."""
    state = request.app.state
    version = await state.db.read(terms.changed_since, form.terms_version)
    if version is None:
        result = await links.unlock(state.db, state.hasher, kind, common.who(request), token, form.password,
                                    state.config.base_url, terms.shown(form.terms_version))
        if result.outcome is links.Unlock.TERMS_CHANGED:
            version = result.terms_version
    if version is not None:
        if await links.find_open_async(state.db, kind, token) is None:
            return await common.in_thread(_invalid, request)
        return await common.in_thread(password_page, 409, common.gettext(request, TERMS_CHANGED, version=version))
    if result.outcome is links.Unlock.OK:
        response = Redirect(home, status_code=303)
        set_link_cookie(response, request, token, result.session_token)
        return response
    if await links.find_open_async(state.db, kind, token) is None:
        return await common.in_thread(_invalid, request)
    if result.outcome is links.Unlock.WAIT:
        error = common.ngettext(
            request, "Too many wrong passwords. Try again in %(num)s minute.",
            "Too many wrong passwords. Try again in %(num)s minutes.", _wait_minutes(result.retry_after))
        page = await common.in_thread(password_page, 429, error)
    elif result.retry_after:  # this wrong password made the next try wait: say so now, not at the next try
        error = common.ngettext(
            request, "This password is not correct. You can try again in %(num)s minute.",
            "This password is not correct. You can try again in %(num)s minutes.", _wait_minutes(result.retry_after))
        page = await common.in_thread(password_page, 401, error)
    else:
        return await common.in_thread(password_page, 401, common.gettext(request, "This password is not correct."))
    page.headers["Retry-After"] = str(result.retry_after)  # RFC 9110: seconds until a try is checked again
    return page


def unlocked(request: Request, kind: links.Kind, token: str):
    """The link's object and the link session's hash, or 404: for every page behind the password."""
    cookie = request.cookies.get(_cookie_name(token))
    found = links.session_object(common.db(request), kind, token, cookie)
    if found is None:
        raise NotFoundException()
    return found, passwords.token_hash(cookie)


@route("/s/{token:str}", http_method=["GET", "HEAD"], name="link", sync_to_thread=True)
def open_link(request: Request, token: str) -> Template:
    share = links.session_object(common.db(request), SHARE, token, request.cookies.get(_cookie_name(token)))
    if share is not None:
        return _files_page(request, token, share)
    if links.find_open(common.db(request), SHARE, token) is None:
        return _invalid(request)
    return _password_page(request, token)


@post("/s/{token:str}")
async def unlock_link(request: Request, token: str, data: Annotated[UnlockForm, common.FORM]) -> Template | Redirect:
    """The password and the Access button; accepting the terms is recorded with the access."""
    return await unlock_answer(request, SHARE, token, data, f"/s/{token}",
                         lambda status, error: _password_page(request, token, status, error))


CHECK_EVERY = 64  # chunks (about 64 MiB) between two "is the share still open?" checks


def _counted(request: Request, response: Response, share: shares.Share, session: str, single=None, zipped=()):
    """Stream the response while noting what was sent; stop if the share is revoked or deleted
    meanwhile. ``single``: (file, first byte) of a one-file response; ``zipped``: the files of a zip,
    counted only if the whole zip went out (a zip cut off only closes its members' responses)."""
    state, who = request.app.state, common.who(request)
    inner = response.iterator
    length = int(response.headers["Content-Length"])

    async def counting():
        sent = 0
        try:
            async for n, chunk in _numbered(inner):
                if n and n % CHECK_EVERY == 0 and not await common.in_thread(links.still_open, state.db, SHARE, share.id):
                    return  # the connection ends early; the client sees an incomplete download
                sent += len(chunk)
                yield chunk
        finally:
            # Shielded: a client that disconnects cancels the response, never the bookkeeping.
            with CancelScope(shield=True):
                if single is not None:
                    await common.in_thread(share_downloads.record_download, state.db, who, share,
                                           [(single[0], single[1], sent)], session, state.config)
                # Whole when every byte went out, not when the iterator ran to its end: a client
                # that has all it was promised closes the connection, and the server may cancel
                # the response before it notices that nothing more is due.
                elif sent == length:
                    await common.in_thread(share_downloads.record_download, state.db, who, share,
                                           [(stored, 0, stored.size) for stored in zipped], session, state.config)
                else:  # cut off: its places in the limit last RESUME_GRACE, as a cut single download's
                    await common.in_thread(share_downloads.record_cut_off, state.db, who, share, list(zipped),
                                           session)

    response.iterator = counting()
    return response


async def _numbered(iterator):
    n = 0
    async for chunk in iterator:
        yield n, chunk
        n += 1


def _refused(request: Request, admissions: list) -> Template:
    """Limit reached (410: for good), or the downloads left are in progress elsewhere (503 with
    Retry-After: a download manager comes back when a place a cut download held may be free)."""
    if share_downloads.Admission.BUSY in admissions:
        page = common.render(request, "links/limit.html", status_code=503, busy=True)
        page.headers["Retry-After"] = str(int(share_downloads.RESUME_GRACE.total_seconds()))
        return page
    return common.render(request, "links/limit.html", status_code=410, busy=False)


@route("/s/{token:str}/files/{file_id:str}", http_method=["GET"], sync_to_thread=True)
def download_file(request: Request, token: str, file_id: str) -> Response:
    share, session = unlocked(request, SHARE, token)
    database = common.db(request)
    chosen = [f for f in shares.share_files(database, share.id) if f.id == file_id]
    if not chosen:
        raise NotFoundException()
    stored = chosen[0]
    wanted = downloads.effective_range(request, stored)  # what file_response will send, If-Range included
    if wanted == "unsatisfiable":
        return downloads.file_response(request, stored)  # 416: nothing is sent, nothing counted
    start = wanted[0] if wanted else 0
    admission = share_downloads.start_download(database, common.who(request), share, stored, session)
    if admission is not share_downloads.Admission.ADMITTED:
        return _refused(request, [admission])
    return _counted(request, downloads.file_response(request, stored), share, session, single=(stored, start))


@route("/s/{token:str}/zip", http_method=["GET"], sync_to_thread=True)
def download_zip(request: Request, token: str) -> Response:
    share, session = unlocked(request, SHARE, token)
    database, who = common.db(request), common.who(request)
    admissions = {f: share_downloads.start_download(database, who, share, f, session)
                  for f in shares.share_files(database, share.id)}
    chosen = [f for f, admission in admissions.items() if admission is share_downloads.Admission.ADMITTED]
    if not chosen:
        return _refused(request, list(admissions.values()))
    return _counted(request, downloads.zip_response(request, chosen), share, session, zipped=chosen)


@route("/p/{token:str}", http_method=["GET", "HEAD"], name="password_link", sync_to_thread=True)
def show_password_link(request: Request, token: str) -> Template:
    valid = links.password_link_valid(common.db(request), token)
    return common.render(request, "links/password.html", status_code=200 if valid else 404, valid=valid,
                         token=token, password="")


@post("/p/{token:str}", sync_to_thread=True)
def reveal_password(request: Request, token: str) -> Template:
    password = links.reveal_password(common.db(request), common.who(request), token)
    return common.render(request, "links/password.html", status_code=200 if password else 404,
                         valid=password is not None, token=token, password=password or "")


routes = [Router(path="/", route_handlers=[open_link, unlock_link, download_file, download_zip, show_password_link,
                                           reveal_password])]
