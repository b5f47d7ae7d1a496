"""A request's link for the person asked to send files (/r/...): no account, the link and its password.

GET and HEAD of the link only show the password form (a mail scanner that follows the link
changes nothing); Access opens a link session (views.links.unlock_answer, as for shares). Behind
it: the upload page, in the guest's language (the request's, until they choose another), saying
until when the link is valid and what it takes; the uploader (tus, :mod:`views.request_uploads`)
and a plain form for browsers without JavaScript, both into the request's target; the files
waiting for Transmit by name and size, with Remove; and Transmit, which leads to the receipt.
No route here ever serves a file's bytes: an upload link is not a download link.

Unknown, expired, revoked, locked, closed and deleted links all get the same page. Only the
receipt is shown once a one-submission request has closed, and only to a browser holding a
session of that link (links.session_after_close). A busy guest keeps their link session: each
page slides it (links.keep_alive) and sets its cookie again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from litestar import Request, Response, Router, get, post, route
from litestar.exceptions import NotFoundException
from litestar.response import Redirect

from relais import i18n, links, request_submissions, requests, targets, users
from relais.i18n import N_
from views import common, framework, streaming
from views import files as file_views
from views import links as link_views

KIND = requests.KIND

NOTICES = {
    "uploaded": N_("Your files were uploaded. Click Transmit once every file you want to send is listed."),
    "removed": N_("The file was removed."),
    "upload_removed": N_("The unfinished upload was removed."),
}
# A form upload cannot resume: what arrived is not kept for a link session that is gone.
FORM_SESSION_ENDED = N_("Your access to this link ended during the upload, so the file was not kept. Open the link"
                        " from the e-mail again, type the password and upload the file again.")
UPLOAD_BUSY = N_("This upload is receiving data right now. Cancel it in the window that sends it, then remove it.")


@dataclass
class Guest:
    """The request behind a guest's link session, and that session."""

    request: requests.Request
    session_token: str

    @property
    def target(self) -> targets.Target:
        return targets.Target.request(self.request.id)


@dataclass
class TransmitForm:
    reference: str = ""


def speak(request: Request, found: requests.Request) -> None:
    """The guest's pages and answers are in the request's language until they choose another."""
    if request.cookies.get(common.LANGUAGE_COOKIE) not in i18n.LANGUAGES:
        request.scope["state"]["lang"] = found.language


def guest(request: Request, token: str) -> Guest | None:
    """The open request this browser unlocked, its session kept alive; None otherwise."""
    try:
        found, session_hash = link_views.unlocked(request, KIND, token)
    except NotFoundException:
        return None
    if not links.keep_alive(common.db(request), KIND, found.id, session_hash):
        return None
    speak(request, found)
    streaming.set_link_session(request, KIND, found.id, session_hash)  # its transfers keep it alive too
    return Guest(found, request.cookies[link_views._cookie_name(token)])


def kept(response: Response, request: Request, token: str, visitor: Guest) -> Response:
    """The response, with the link session's cookie set again for LINK_SESSION."""
    link_views.set_link_cookie(response, request, token, visitor.session_token)
    return response


def _lists(request: Request, visitor: Guest) -> dict:
    database, found = common.db(request), visitor.request
    pending = requests.pending_files(database, found.id)
    on_their_way = requests.uploads_on_their_way(database, found.id)
    return {"pending": pending, "on_their_way": on_their_way,
            "places_left": max(0, found.max_files - len(pending) - len(on_their_way))}


def _page(request: Request, token: str, visitor: Guest, status: int = 200, error: str = "",
          reference: str = "") -> Response:
    found = visitor.request
    owner = users.get(common.db(request), found.owner_id)
    notice = NOTICES.get(request.query_params.get("notice", ""), "")
    page = common.render(
        request, "request_links/upload.html", status_code=status, token=token, file_request=found,
        owner_name=(owner.name or owner.email) if owner else "", owner_email=owner.email if owner else "",
        types=found.types, max_size=found.max_file_size, error=error, notice=notice, reference=reference,
        upload_endpoint=f"/r/{token}/tus/", upload_list=f"/r/{token}/files", **_lists(request, visitor),
    )
    return kept(page, request, token, visitor)


def _list(request: Request, token: str, visitor: Guest, status: int = 200, error: str = "") -> Response:
    """The htmx partial: files waiting for Transmit and unfinished uploads."""
    page = common.render(request, "request_links/_pending.html", status_code=status, token=token,
                         file_request=visitor.request, list_error=error, **_lists(request, visitor))
    return kept(page, request, token, visitor)


def _password_page(request: Request, token: str, found: requests.Request, status: int = 200,
                   error: str = "") -> Response:
    speak(request, found)
    owner = users.get(common.db(request), found.owner_id)
    current = links.current_terms(common.db(request), common.lang(request))
    return common.render(request, "request_links/unlock.html", status_code=status, token=token, terms=current,
                         error=error, action=f"/r/{token}", owner_name=(owner.name or owner.email) if owner else "")


def _invalid(request: Request) -> Response:
    return link_views._invalid(request)


@route("/r/{token:str}", http_method=["GET", "HEAD"], name="request_link", sync_to_thread=True)
def open_request(request: Request, token: str) -> Response:
    visitor = guest(request, token)
    if visitor is not None:
        return _page(request, token, visitor)
    found = links.find_open(common.db(request), KIND, token)
    if found is None:
        return _invalid(request)
    return _password_page(request, token, found)


@post("/r/{token:str}")
async def unlock_request(request: Request, token: str,
                         data: Annotated[link_views.UnlockForm, common.FORM]) -> Response:
    """The password and Access; accepting the terms is recorded with the access."""
    found = await links.find_open_async(common.db(request), KIND, token)
    if found is not None:
        speak(request, found)
    return await link_views.unlock_answer(request, KIND, token, data, f"/r/{token}",
                                          lambda status, error: _password_page(request, token, found, status, error))


@get("/r/{token:str}/files", sync_to_thread=True)
def show_pending(request: Request, token: str) -> Response:
    visitor = guest(request, token)
    if visitor is None:
        return _invalid(request)
    return _list(request, token, visitor)


def _after_change(request: Request, token: str, visitor: Guest, notice: str) -> Response:
    if request.headers.get("hx-request"):
        return _list(request, token, visitor)
    return kept(Redirect(f"/r/{token}?notice={notice}", status_code=303), request, token, visitor)


@post("/r/{token:str}/files/{file_id:str}/remove", sync_to_thread=True)
def remove_file(request: Request, token: str, file_id: str) -> Response:
    """Remove before Transmit: the pending file is shredded (another's, or a sent one, is a 404)."""
    visitor = guest(request, token)
    if visitor is None:
        return _invalid(request)
    state = request.app.state
    if not requests.remove_pending(state.db, state.config.files_dir, common.who(request), visitor.request, file_id):
        raise NotFoundException()
    return _after_change(request, token, visitor, "removed")


@post("/r/{token:str}/uploads/{upload_id:str}/remove", sync_to_thread=True)
def remove_upload(request: Request, token: str, upload_id: str) -> Response:
    """An unfinished upload of this request, removed with what arrived of it (tus termination)."""
    visitor = guest(request, token)
    if visitor is None:
        return _invalid(request)
    engine = request.app.state.uploads
    upload = engine.find(upload_id, visitor.target)
    if upload is None:
        raise NotFoundException()
    if not engine.terminate(common.who(request), upload):
        message = common.gettext(request, UPLOAD_BUSY)
        if request.headers.get("hx-request"):
            return _list(request, token, visitor, error=message)  # 200: htmx shows it
        return _page(request, token, visitor, 409, message)
    return _after_change(request, token, visitor, "upload_removed")


# No fixed body limit: each file is held to the request's largest size as it streams in. The
# CSRF token is checked by the form's reader, before a byte of a file (see views.files).
@post("/r/{token:str}/upload", opt=framework.WITHOUT_CSRF_MIDDLEWARE, request_max_body_size=None)
async def upload_form(request: Request, token: str) -> Response:
    """The plain form for browsers without JavaScript: the same target, checks and refusals as tus."""
    visitor = await common.in_thread(guest, request, token)
    if visitor is None:
        return await common.in_thread(_invalid, request)
    answer = await file_views.form_upload(
        request, visitor.target, f"/r/{token}?notice=uploaded",
        lambda status, error: _page(request, token, visitor, status, error), FORM_SESSION_ENDED)
    return kept(answer, request, token, visitor)


@post("/r/{token:str}/transmit", sync_to_thread=True)
def transmit(request: Request, token: str, data: Annotated[TransmitForm, common.FORM]) -> Response:
    """The pending files become a submission; the receipt follows (303)."""
    visitor = guest(request, token)
    if visitor is None:
        return _invalid(request)
    state = request.app.state
    try:
        submission = request_submissions.transmit(state.db, common.who(request), visitor.request, data.reference,
                                       common.lang(request), state.config.base_url)
    except requests.RequestRefused as exc:
        status = 400 if exc.reason in ("reference_missing", "bad_reference") else 409
        message = common.gettext(request, requests.REASONS[exc.reason], **exc.variables)
        return _page(request, token, visitor, status, message, reference=data.reference)
    return kept(Redirect(f"/r/{token}/receipt/{submission.id}", status_code=303), request, token, visitor)


@get("/r/{token:str}/receipt/{submission_id:str}", sync_to_thread=True)
def show_receipt(request: Request, token: str, submission_id: str) -> Response:
    """What was transmitted (name, size, SHA-256, time): for a session of this link, even once the
    request has closed. Names and hashes only: nothing here leads to a file."""
    database = common.db(request)
    found = links.session_after_close(database, KIND, token, request.cookies.get(link_views._cookie_name(token)))
    got = request_submissions.receipt(database, found.id, submission_id) if found is not None else None
    if got is None:
        return _invalid(request)
    speak(request, found)
    submission, listed = got
    return common.render(request, "request_links/receipt.html", token=token, file_request=found,
                         submission=submission, files=listed, more=found.several and found.open)


routes = [Router(path="/", route_handlers=[open_request, unlock_request, show_pending, remove_file, remove_upload,
                                           upload_form, transmit, show_receipt])]
