"""Staff's side of requests ("Request files"): the list, a new request, its details and activity,
the received files to download (one by one or as a zip), revoke, extend, delete.

It mirrors :mod:`views.shares`. A download counts as a retrieval only when the file went out
whole, to its last byte (a resumed download's responses together included, a probe of a few
bytes never), and a zip only when all of it went out (:func:`_counted`). Files the guest has
not transmitted yet are never shown here.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Request, Router, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Response

from relais import files, i18n, paging, passwords, request_retention, request_staff, requests, settings, users
from views import common, downloads

N_ = i18n.N_

STATE_NAMES = {
    "received": N_("Files to retrieve"), "waiting": N_("Waiting for files"), "retrieved": N_("Retrieved"),
    "expired": N_("Expired"), "revoked": N_("Revoked"), "locked": N_("Locked"), "deleted": N_("Deleted"),
}
LINK_NAMES = {
    "open": N_("Open: takes files"), "closed": N_("Closed: the files were sent"), "expired": N_("Expired"),
    "revoked": N_("Revoked"), "locked": N_("Locked after wrong passwords"), "deleted": N_("Deleted"),
}
EVENT_NAMES = {
    "access": N_("Opened with the password"), "access_refused": N_("Wrong password"),
    "access_refused:wait": N_("Refused: waiting after wrong passwords"),
    "locked": N_("Locked after wrong passwords"), "file_remove": N_("File removed by the sender"),
    "transmit": N_("Files transmitted"), "download": N_("Downloaded completely"),
    "retrieved": N_("Every file of a submission retrieved"),
}
PURGE_REASONS = {
    "deadline": N_("The retrieval deadline was reached."), "retrieved": N_("Every file had been retrieved."),
    "deleted": N_("The request was deleted."),
}


def _form_page(request: Request, status: int = 200, error: str = "", form: dict | None = None) -> Response:
    database = common.db(request)
    values = database.read_sync(settings.all_values)
    form = form or {
        "recipient": "", "message": "", "language": common.lang(request), "expires_days": values["request_default_days"],
        "types": [], "max_file_size_mib": values["max_file_size_mib"], "max_files": 10, "several": False,
        "reference_label": "", "password_link": False,
    }
    return common.render(
        request, "requests/new.html", status_code=status, error=error, form=form, languages=i18n.NAMES,
        max_days=values["request_max_days"], site_mib=values["max_file_size_mib"], allowed=sorted(files.ALLOWED),
        max_files=requests.MAX_FILES,
    )


@get("/", name="requests", sync_to_thread=True)
def list_requests(request: Request) -> Response:
    rows = request_staff.for_staff(common.db(request), common.current_user(request),
                              paging.number(request.query_params.get("page")))
    return common.render(request, "requests/list.html", requests=rows, state_names=STATE_NAMES)


@get("/new", name="request_new", sync_to_thread=True)
def new_request(request: Request) -> Response:
    return _form_page(request)


def _whole(value: str, reason: str) -> int:
    number = paging.whole(value, 6)
    if number is None:
        raise requests.RequestRefused(reason)
    return number


@post("/")
async def create_request(request: Request) -> Response | Redirect:
    """Create the request, then redirect (Post/Redirect/Get): refreshing the page that shows the
    password must not send the form again. The password waits in memory for that one page."""
    form = await request.form()
    data = {
        "recipient": str(form.get("recipient", ""))[:1000], "message": str(form.get("message", "")),
        "language": str(form.get("language", "")), "expires_days": str(form.get("expires_days", "")).strip(),
        "types": [str(v) for v in form.getall("types", [])][:100],
        "max_file_size_mib": str(form.get("max_file_size_mib", "")).strip(),
        "max_files": str(form.get("max_files", "")).strip(), "several": form.get("several") == "yes",
        "reference_label": str(form.get("reference_label", ""))[:1000], "password": str(form.get("password", "")),
        "password_link": form.get("password_link") == "on",
    }
    state = request.app.state
    try:
        new = requests.NewRequest(
            recipient=data["recipient"], message=data["message"], language=data["language"],
            expires_days=_whole(data["expires_days"], "bad_expiry"), accepted_types=tuple(data["types"]),
            max_file_size_mib=_whole(data["max_file_size_mib"], "bad_size") if data["max_file_size_mib"] else None,
            max_files=_whole(data["max_files"], "bad_count"), several=data["several"],
            reference_label=data["reference_label"], password=data["password"],
        )
        found, token, password, password_token = await common.in_thread(
            requests.create, state.db, state.hasher, common.who(request), common.current_user(request), new,
            state.config.base_url, data["password_link"],
        )
    except requests.RequestRefused as exc:
        values = await common.db(request).read(settings.all_values)
        if exc.reason == "bad_expiry":
            exc.variables.setdefault("days", values["request_max_days"])
        if exc.reason == "bad_size":
            exc.variables.setdefault("limit", values["max_file_size_mib"])
        message = common.gettext(request, requests.REASONS[exc.reason], **exc.variables)
        return await common.in_thread(_form_page, request, 400, message, {**data, "password": ""})
    except passwords.PasswordRejected as exc:
        from views.auth import PASSWORD_ERRORS

        message = common.gettext(request, PASSWORD_ERRORS[exc.reason])
        return await common.in_thread(_form_page, request, 400, message, {**data, "password": ""})
    state.mail_sender.wake()
    base = state.config.base_url
    state.shown_once.put(_once_key(request, found.id), {
        "password": password, "password_link": f"{base}/p/{password_token}" if password_token else "",
    })
    return Redirect(f"/requests/{found.id}/created", status_code=303)


def _once_key(request: Request, request_id: str) -> tuple:
    # The login session that sent the form, and only it, may see the password.
    return ("request-password", request.scope["auth"].id_hash, request_id)


def _visible(request: Request, request_id: str) -> requests.Request:
    found = requests.visible_to(common.db(request), common.current_user(request), request_id)
    if found is None:
        raise NotFoundException()  # someone else's request is as absent as a missing one
    return found


@get("/{request_id:str}/created", sync_to_thread=True)
def show_created(request: Request, request_id: str) -> Response:
    """The password, once: a second visit (a refresh, the back button) finds it gone."""
    found = _visible(request, request_id)
    secrets = request.app.state.shown_once.take(_once_key(request, request_id)) or {}
    return common.render(request, "requests/created.html", req=found, password=secrets.get("password", ""),
                         password_link=secrets.get("password_link", ""))


def _state(found: requests.Request, listed) -> str:
    waiting = sum(1 for submission, _ in listed if submission.waiting)
    retrieved = sum(1 for submission, _ in listed if submission.retrieved_at)
    return request_staff.state(found, waiting, retrieved)


@get("/{request_id:str}", name="request", sync_to_thread=True)
def show_request(request: Request, request_id: str) -> Response:
    found = _visible(request, request_id)
    database = common.db(request)
    listed = request_staff.submissions(database, request_id)
    # An admin looking at someone else's request sees whose it is.
    owner = users.get(database, found.owner_id) if found.owner_id != common.current_user(request).id else None
    return common.render(
        request, "requests/detail.html", req=found, state=_state(found, listed), state_names=STATE_NAMES,
        link_state=found.link_state(), link_names=LINK_NAMES, submissions=listed, purge_reasons=PURGE_REASONS,
        events=request_staff.activity(database, request_id, paging.number(request.query_params.get("page"))),
        event_names=EVENT_NAMES, owner=owner, languages=i18n.NAMES, error=request.query_params.get("error", ""),
        notice=request.query_params.get("notice", ""), max_days=database.read_sync(settings.get, "request_max_days"),
        files_left=any(items for _, items in listed),
    )


# -- downloads: a retrieval counts once the file (or the zip) went out whole ----------------------

def _record(state, who, found: requests.Request, session: str, single, zipped: list, sent: int, whole: bool) -> None:
    if single is not None:
        stored, start = single
        if not request_staff.record_part(state.db, who, found, stored, session, start, sent):
            return
        done = request_staff.record_retrieval(state.db, who, found, [stored])
    elif whole and zipped:
        done = request_staff.record_retrieval(state.db, who, found, zipped)
    else:
        return  # a zip cut off counts for nothing
    request_retention.purge_retrieved(state.db, state.config, found.id, done)


def _counted(request: Request, response: Response, found: requests.Request, single=None, zipped=()) -> Response:
    """Stream the response, and once it ended record the retrieval. ``single``: (file, first byte)
    of a one-file response; ``zipped``: the files of a zip, retrieved only if all of it went out."""
    state, who = request.app.state, common.who(request)
    session = request.scope["auth"].id_hash
    return downloads.counted(request, response, lambda sent, whole: _record(
        state, who, found, session, single, list(zipped), sent, whole))


@get("/{request_id:str}/files/{file_id:str}", sync_to_thread=True)
def download_file(request: Request, request_id: str, file_id: str) -> Response:
    found = _visible(request, request_id)
    stored = request_staff.received_file(common.db(request), found, file_id)
    if stored is None:
        raise NotFoundException()
    wanted = downloads.effective_range(request, stored)  # what file_response sends, If-Range included
    start = wanted[0] if isinstance(wanted, tuple) else 0
    return _counted(request, downloads.file_response(request, stored), found, single=(stored, start))


@get("/{request_id:str}/zip", sync_to_thread=True)
def download_zip(request: Request, request_id: str, submission: str | None = None) -> Response:
    """Every received file still stored, or one submission's (``?submission=``), as one zip."""
    found = _visible(request, request_id)
    chosen = request_staff.received_files(common.db(request), found, submission[:100] if submission else None)
    if not chosen:
        raise NotFoundException()
    return _counted(request, downloads.zip_response(request, chosen), found, zipped=chosen)


# -- revoke, extend, delete --------------------------------------------------------------------------

def _confirm_page(request: Request, found: requests.Request, action: str) -> Response:
    """Before revoking or deleting: what will be lost, by name and size."""
    return common.render(request, "requests/confirm.html", req=found, action=action,
                         files=request_staff.received_files(common.db(request), found))


@get("/{request_id:str}/revoke", name="request_revoke", sync_to_thread=True)
def confirm_revoke(request: Request, request_id: str) -> Response | Redirect:
    found = _visible(request, request_id)
    if not found.open:
        return Redirect(f"/requests/{request_id}", status_code=303)
    return _confirm_page(request, found, "revoke")


@post("/{request_id:str}/revoke", sync_to_thread=True)
def revoke_request(request: Request, request_id: str, data: Annotated[common.ConfirmForm, common.FORM]) -> Redirect:
    found = _visible(request, request_id)
    if not data.given:
        return Redirect(f"/requests/{request_id}/revoke", status_code=303)
    if found.open:
        request_staff.revoke(common.db(request), common.who(request), found)
    return Redirect(f"/requests/{request_id}?notice=revoked", status_code=303)


@post("/{request_id:str}/extend", sync_to_thread=True)
def extend_request(request: Request, request_id: str, data: Annotated[common.ExtendForm, common.FORM]) -> Redirect:
    """A link that is open, or expired (the sender missed the date), is valid ``days`` from now."""
    found = _visible(request, request_id)
    user = common.current_user(request)
    days = data.whole_days
    if found.link_state() not in ("open", "expired") or days is None:
        return Redirect(f"/requests/{request_id}?error=extend", status_code=303)
    try:
        request_staff.extend(common.db(request), common.who(request), found, days, by_admin=user.is_admin)
    except requests.RequestRefused:
        return Redirect(f"/requests/{request_id}?error=extend", status_code=303)
    return Redirect(f"/requests/{request_id}?notice=extended", status_code=303)


@get("/{request_id:str}/delete", name="request_delete", sync_to_thread=True)
def confirm_delete(request: Request, request_id: str) -> Response | Redirect:
    found = _visible(request, request_id)
    if found.deleted_at:
        return Redirect(f"/requests/{request_id}", status_code=303)
    return _confirm_page(request, found, "delete")


@post("/{request_id:str}/delete", sync_to_thread=True)
def delete_request(request: Request, request_id: str, data: Annotated[common.ConfirmForm, common.FORM]) -> Redirect:
    found = _visible(request, request_id)
    if not data.given:
        return Redirect(f"/requests/{request_id}/delete", status_code=303)
    if not found.deleted_at:
        request_retention.delete(common.db(request), request.app.state.config, common.who(request), found)
    return Redirect(f"/requests/{request_id}?notice=deleted", status_code=303)


routes = [
    Router(
        path="/requests", guards=[common.requires_staff],
        route_handlers=[list_requests, new_request, create_request, show_created, show_request, download_file,
                        download_zip, confirm_revoke, revoke_request, extend_request, confirm_delete, delete_request],
    )
]
