"""Staff's side of shares: the list, a new share, its details and activity, revoke, extend, delete."""

from __future__ import annotations

from typing import Annotated

from litestar import Request, Router, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template

from relais import clock, files, i18n, paging, passwords, settings, shares
from views import common

STATUS_NAMES = {
    "active": i18n.N_("Active"), "expired": i18n.N_("Expired"), "revoked": i18n.N_("Revoked"),
    "locked": i18n.N_("Locked"), "downloaded": i18n.N_("Downloaded"), "deleted": i18n.N_("Files deleted"),
}
EVENT_NAMES = {
    "access": i18n.N_("Opened with the password"), "access_refused": i18n.N_("Wrong password"),
    # A refusal during the wait that wrong passwords started: no password was checked.
    "access_refused:wait": i18n.N_("Refused: waiting after wrong passwords"),
    "locked": i18n.N_("Locked after wrong passwords"), "download": i18n.N_("Downloaded completely"),
    "download_start": i18n.N_("Download started"),
}


def shown_status(share: shares.Share, now: str | None = None) -> str:
    """What staff see: why the link stopped, not only that its files are gone.

    ``Share.status()`` answers "deleted" for every share whose files were shredded, which is also
    what revoking, expiry, a lock and deletion after download end with; here the cause comes
    first (whichever happened first), and the page says separately that the files are gone.
    """
    now = now or clock.now_iso()
    if share.revoked_at:
        return "revoked"
    ended = [(share.locked_at, "locked")] if share.locked_at else []
    if share.expires_at <= now:
        ended.append((share.expires_at, "expired"))
    if share.deleted_at:
        # Deleted once every file was downloaded ("delete after download"): that is a download.
        downloaded = share.delete_after_download and share.downloaded_at and share.downloaded_at <= share.deleted_at
        ended.append((share.deleted_at, "downloaded" if downloaded else "deleted"))
    if ended:
        return min(ended)[1]
    return "downloaded" if share.downloaded_at else "active"


def _form_page(request: Request, status: int = 200, error: str = "", form: dict | None = None) -> Template:
    database, user = common.db(request), common.current_user(request)
    listed_at = clock.now_iso()  # before the query: a file stored meanwhile counts as new next time
    available = files.list_files(database, user.id, paging.number(request.query_params.get("page")))
    values = database.read_sync(settings.all_values)
    form = form or {"language": common.lang(request), "expires_days": values["share_default_days"], "file_ids": []}
    return common.render(
        request, "shares/new.html", status_code=status, error=error, form=form, available=available,
        max_days=values["share_max_days"], languages=i18n.NAMES, listed_at=listed_at,
        max_size=files.limits(database)[0],
    )


@get("/", name="shares", sync_to_thread=True)
def list_shares(request: Request) -> Template:
    rows = shares.for_staff(common.db(request), common.current_user(request), paging.number(request.query_params.get("page")))
    now = clock.now_iso()
    for row in rows:
        row["shown_status"] = shown_status(shares.Share.from_row(row), now)
    return common.render(request, "shares/list.html", shares=rows, status_names=STATUS_NAMES)


@get("/new", name="share_new", sync_to_thread=True)
def new_share(request: Request) -> Template:
    return _form_page(request)


@get("/new/files", sync_to_thread=True)
def file_choices(request: Request) -> Template:
    """The htmx partial of files to choose from, refreshed when an upload completes: a file that
    was not on the page before (just uploaded here) comes back already chosen."""
    chosen = set(request.query_params.getall("file_ids", [])[:1000])
    seen = set(request.query_params.getall("seen", []))
    # Files stored after the picker was last shown are new, not merely on a page not seen yet.
    shown_at, listed_at = request.query_params.get("listed_at", ""), clock.now_iso()
    available = files.list_files(common.db(request), common.current_user(request).id,
                                 paging.number(request.query_params.get("page")))
    chosen |= {f.id for f in available if f.id not in seen and f.completed_at > shown_at}
    return common.render(request, "shares/_file_choices.html", available=available, chosen=chosen, listed_at=listed_at)


@post("/")
async def create_share(request: Request) -> Template | Redirect:
    """Create the share, then redirect (Post/Redirect/Get): refreshing the page that shows the
    password must not send the form again. The password waits in memory for that one page."""
    form = await request.form()
    data = {
        "file_ids": [str(v) for v in form.getall("file_ids", [])][:1000],
        "recipients": str(form.get("recipients", ""))[:5000], "message": str(form.get("message", "")),
        "language": str(form.get("language", "")), "expires_days": str(form.get("expires_days", "")).strip(),
        "download_limit": str(form.get("download_limit", "")).strip(),
        "delete_after_download": form.get("delete_after_download") == "on",
        "password": str(form.get("password", "")), "password_link": form.get("password_link") == "on",
    }
    try:
        new = shares.NewShare(
            file_ids=data["file_ids"], recipients=data["recipients"], message=data["message"],
            language=data["language"], expires_days=_whole(data["expires_days"], "bad_expiry"),
            download_limit=_whole(data["download_limit"], "bad_limit") if data["download_limit"] else None,
            delete_after_download=data["delete_after_download"], password=data["password"],
        )
        state = request.app.state
        share, token, password, password_token = await common.in_thread(
            shares.create, state.db, state.hasher, common.who(request), common.current_user(request), new,
            state.config.base_url, data["password_link"],
        )
    except shares.ShareRefused as exc:
        if exc.reason == "bad_expiry":
            exc.variables.setdefault("days", await common.db(request).read(settings.get, "share_max_days"))
        message = common.gettext(request, shares.REASONS[exc.reason], **exc.variables)
        return await common.in_thread(_form_page, request, 400, message, {**data, "password": ""})
    except passwords.PasswordRejected as exc:
        from views.auth import PASSWORD_ERRORS

        message = common.gettext(request, PASSWORD_ERRORS[exc.reason])
        return await common.in_thread(_form_page, request, 400, message, {**data, "password": ""})
    request.app.state.mail_sender.wake()
    base = request.app.state.config.base_url
    request.app.state.shown_once.put(_once_key(request, share.id), {
        "password": password, "password_link": f"{base}/p/{password_token}" if password_token else "",
    })
    return Redirect(f"/shares/{share.id}/created", status_code=303)


def _once_key(request: Request, share_id: str) -> tuple:
    # The login session that sent the form, and only it, may see the password (not a colleague
    # or an admin who opens the same URL).
    return ("share-password", request.scope["auth"].id_hash, share_id)


@get("/{share_id:str}/created", sync_to_thread=True)
def show_created(request: Request, share_id: str) -> Template:
    """The password, once: a second visit (a refresh, the back button) finds it gone."""
    share = _visible(request, share_id)
    secrets = request.app.state.shown_once.take(_once_key(request, share_id)) or {}
    return common.render(
        request, "shares/created.html", share=share, password=secrets.get("password", ""),
        password_link=secrets.get("password_link", ""),
    )


def _whole(value: str, reason: str) -> int:
    number = paging.whole(value, 6)
    if number is None:
        raise shares.ShareRefused(reason)
    return number


def _visible(request: Request, share_id: str) -> shares.Share:
    share = shares.visible_to(common.db(request), common.current_user(request), share_id)
    if share is None:
        raise NotFoundException()  # someone else's share is as absent as a missing one
    return share


@get("/{share_id:str}", name="share", sync_to_thread=True)
def show_share(request: Request, share_id: str) -> Template:
    share = _visible(request, share_id)
    database = common.db(request)
    recipients = shares.recipients(database, share_id)
    return common.render(
        request, "shares/detail.html", share=share, status=share.status(), status_names=STATUS_NAMES,
        shown_status=shown_status(share),
        files=shares.share_files(database, share_id), recipients=recipients,
        events=shares.activity(database, share_id, paging.number(request.query_params.get("page"))),
        event_names=EVENT_NAMES,
        error=request.query_params.get("error", ""),
        notice=request.query_params.get("notice", ""), max_days=database.read_sync(settings.get, "share_max_days"),
    )


def _confirm_page(request: Request, share: shares.Share, action: str) -> Template:
    """Before revoking or deleting: the files that will be destroyed, by name and size, and who loses access."""
    database = common.db(request)
    return common.render(
        request, "shares/confirm.html", share=share, action=action, files=shares.share_files(database, share.id),
        recipients=shares.recipients(database, share.id),
    )


@get("/{share_id:str}/revoke", name="share_revoke", sync_to_thread=True)
def confirm_revoke(request: Request, share_id: str) -> Template | Redirect:
    share = _visible(request, share_id)
    if share.status() in ("deleted", "revoked"):
        return Redirect(f"/shares/{share_id}", status_code=303)
    return _confirm_page(request, share, "revoke")


@post("/{share_id:str}/revoke", sync_to_thread=True)
def revoke_share(request: Request, share_id: str, data: Annotated[common.ConfirmForm, common.FORM]) -> Redirect:
    share = _visible(request, share_id)
    if not data.given:
        return Redirect(f"/shares/{share_id}/revoke", status_code=303)
    if share.status() not in ("deleted", "revoked"):
        shares.revoke(common.db(request), request.app.state.config, common.who(request), share)
    return Redirect(f"/shares/{share_id}?notice=revoked", status_code=303)


@post("/{share_id:str}/extend", sync_to_thread=True)
def extend_share(request: Request, share_id: str, data: Annotated[common.ExtendForm, common.FORM]) -> Redirect:
    share = _visible(request, share_id)
    user = common.current_user(request)
    days = data.whole_days
    if not share.open or days is None:
        return Redirect(f"/shares/{share_id}?error=extend", status_code=303)
    try:
        shares.extend(common.db(request), common.who(request), share, days, by_admin=user.is_admin)
    except shares.ShareRefused:
        return Redirect(f"/shares/{share_id}?error=extend", status_code=303)
    return Redirect(f"/shares/{share_id}?notice=extended", status_code=303)


@get("/{share_id:str}/delete", name="share_delete", sync_to_thread=True)
def confirm_delete(request: Request, share_id: str) -> Template | Redirect:
    share = _visible(request, share_id)
    if share.status() == "deleted":
        return Redirect(f"/shares/{share_id}", status_code=303)
    return _confirm_page(request, share, "delete")


@post("/{share_id:str}/delete", sync_to_thread=True)
def delete_share(request: Request, share_id: str, data: Annotated[common.ConfirmForm, common.FORM]) -> Redirect:
    share = _visible(request, share_id)
    if not data.given:
        return Redirect(f"/shares/{share_id}/delete", status_code=303)
    if share.status() != "deleted":
        shares.delete(common.db(request), request.app.state.config, common.who(request), share)
    return Redirect(f"/shares/{share_id}?notice=deleted", status_code=303)


routes = [
    Router(
        path="/shares", guards=[common.requires_staff],
        route_handlers=[list_shares, new_share, file_choices, create_share, show_created, show_share, confirm_revoke,
                        revoke_share, extend_share, confirm_delete, delete_share],
    )
]
