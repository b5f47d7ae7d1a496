"""Staff's side of shares: the list, a new share, its details and activity, revoke, extend, delete."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from litestar import Request, Router, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template

from relais import files, i18n, passwords, settings, shares
from views import common

STATUS_NAMES = {
    "active": i18n.N_("Active"), "expired": i18n.N_("Expired"), "revoked": i18n.N_("Revoked"),
    "locked": i18n.N_("Locked"), "downloaded": i18n.N_("Downloaded"), "deleted": i18n.N_("Deleted"),
}
EVENT_NAMES = {
    "access": i18n.N_("Opened with the password"), "access_refused": i18n.N_("Wrong password"),
    "locked": i18n.N_("Locked after wrong passwords"), "download": i18n.N_("Downloaded completely"),
    "download_start": i18n.N_("Download started"),
}


def _form_page(request: Request, status: int = 200, error: str = "", form: dict | None = None) -> Template:
    database, user = common.db(request), common.current_user(request)
    available = [f for f in files.list_files(database, user.id)]
    values = settings.all_values(database.conn)
    form = form or {"language": common.lang(request), "expires_days": values["share_default_days"], "file_ids": []}
    return common.render(
        request, "shares/new.html", status_code=status, error=error, form=form, available=available,
        max_days=values["share_max_days"], languages=i18n.NAMES,
        max_size=files.limits(database)[0],
    )


@get("/", name="shares", sync_to_thread=True)
def list_shares(request: Request) -> Template:
    rows = shares.for_staff(common.db(request), common.current_user(request))
    return common.render(request, "shares/list.html", shares=rows, status_names=STATUS_NAMES)


@get("/new", name="share_new", sync_to_thread=True)
def new_share(request: Request) -> Template:
    return _form_page(request)


@get("/new/files", sync_to_thread=True)
def file_choices(request: Request) -> Template:
    """The htmx partial of files to choose from, refreshed when an upload completes: a file that
    was not on the page before (just uploaded here) comes back already chosen."""
    chosen = set(request.query_params.getall("file_ids", []))
    seen = set(request.query_params.getall("seen", []))
    available = files.list_files(common.db(request), common.current_user(request).id)
    chosen |= {f.id for f in available if f.id not in seen}
    return common.render(request, "shares/_file_choices.html", available=available, chosen=chosen)


@post("/")
async def create_share(request: Request) -> Template:
    """Create the share; the result page is the only place the password is ever shown."""
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
            exc.variables.setdefault("days", settings.get(common.db(request).conn, "share_max_days"))
        message = common.gettext(request, shares.REASONS[exc.reason], **exc.variables)
        return await common.in_thread(_form_page, request, 400, message, {**data, "password": ""})
    except passwords.PasswordRejected as exc:
        from views.auth import PASSWORD_ERRORS

        message = common.gettext(request, PASSWORD_ERRORS[exc.reason])
        return await common.in_thread(_form_page, request, 400, message, {**data, "password": ""})
    request.app.state.mail_sender.wake()
    base = request.app.state.config.base_url
    return common.render(
        request, "shares/created.html", status_code=201, share=share, password=password, link=f"{base}/s/{token}",
        password_link=f"{base}/p/{password_token}" if password_token else "",
    )


def _whole(value: str, reason: str) -> int:
    if not value.isdigit() or len(value) > 6:
        raise shares.ShareRefused(reason)
    return int(value)


def _visible(request: Request, share_id: str) -> shares.Share:
    share = shares.visible_to(common.db(request), common.current_user(request), share_id)
    if share is None:
        raise NotFoundException()  # someone else's share is as absent as a missing one
    return share


@get("/{share_id:str}", name="share", sync_to_thread=True)
def show_share(request: Request, share_id: str) -> Template:
    share = _visible(request, share_id)
    database = common.db(request)
    recipients = shares.recipients(database.conn, share_id)
    return common.render(
        request, "shares/detail.html", share=share, status=share.status(), status_names=STATUS_NAMES,
        files=shares.share_files(database.conn, share_id), recipients=recipients,
        events=shares.activity(database, share_id), event_names=EVENT_NAMES,
        error=request.query_params.get("error", ""),
        notice=request.query_params.get("notice", ""), max_days=settings.get(database.conn, "share_max_days"),
    )


@post("/{share_id:str}/revoke", sync_to_thread=True)
def revoke_share(request: Request, share_id: str) -> Redirect:
    share = _visible(request, share_id)
    if share.status() not in ("deleted", "revoked"):
        shares.revoke(common.db(request), request.app.state.config, common.who(request), share)
    return Redirect(f"/shares/{share_id}?notice=revoked", status_code=303)


@dataclass
class ExtendForm:
    days: str = ""


@post("/{share_id:str}/extend", sync_to_thread=True)
def extend_share(request: Request, share_id: str, data: Annotated[ExtendForm, common.FORM]) -> Redirect:
    share = _visible(request, share_id)
    user = common.current_user(request)
    if not share.open or not data.days.strip().isdigit() or len(data.days) > 4:
        return Redirect(f"/shares/{share_id}?error=extend", status_code=303)
    try:
        shares.extend(common.db(request), common.who(request), share, int(data.days), by_admin=user.is_admin)
    except shares.ShareRefused:
        return Redirect(f"/shares/{share_id}?error=extend", status_code=303)
    return Redirect(f"/shares/{share_id}?notice=extended", status_code=303)


@post("/{share_id:str}/delete", sync_to_thread=True)
def delete_share(request: Request, share_id: str) -> Redirect:
    share = _visible(request, share_id)
    if share.status() != "deleted":
        shares.delete(common.db(request), request.app.state.config, common.who(request), share)
    return Redirect(f"/shares/{share_id}?notice=deleted", status_code=303)


routes = [
    Router(
        path="/shares", guards=[common.requires_staff],
        route_handlers=[list_shares, new_share, file_choices, create_share, show_share, revoke_share, extend_share,
                        delete_share],
    )
]
