"""A partner's space, seen from both sides (the rules are in relais.spaces).

The partner's side is under /space: their own space only, found from their session, never from
the URL. Staff's side is under /partners/<id>/space, for any partner (staff see every partner).
Both sides list the two ways (placed by the registry, sent by the partner), upload with the
engine's uploader (tus under <base>/tus/, or the plain form), download by name or several as a
zip, and delete with a confirmation. A file id of another partner's space is a 404, as if absent;
a partner who tries one leaves a row in the trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from litestar import Request, Response, Router, delete, get, head, patch, post, route
from litestar.exceptions import NotFoundException
from litestar.response import Redirect

from relais import audit, files, paging, partners, spaces, targets
from relais.i18n import N_
from views import common, downloads, framework
from views import files as file_views
from views import uploads as tus

NOTICES = {
    "uploaded": N_("Your files were uploaded."),
    "deleted": N_("The file was deleted."),
}


@dataclass(frozen=True)
class Side:
    """Who looks at the space, and from where."""

    partner: partners.Partner
    base: str  # "/space" (the partner) or "/partners/<id>/space" (staff)
    by_partner: bool
    target: targets.Target  # where this side's uploads go

    @property
    def sends(self) -> str:
        return spaces.FROM_PARTNER if self.by_partner else spaces.TO_PARTNER


def partner_side(request: Request) -> Side:
    partner = partners.get(common.db(request), common.current_user(request).id)
    if partner is None:
        raise NotFoundException()
    return Side(partner, "/space", True, targets.Target.space_in(partner.id))


def staff_side(request: Request, partner_id: int) -> Side:
    partner = partners.get(common.db(request), partner_id)  # a staff account's id finds none
    if partner is None:
        raise NotFoundException()
    return Side(partner, f"/partners/{partner.id}/space", False,
                targets.Target.space_out(partner.id, common.current_user(request).id))


def context(request: Request, side: Side) -> dict:
    """What the space's lists and uploader need (the partner's page and staff's partner page)."""
    database = common.db(request)
    pages = {name: paging.number(request.query_params.get(f"{name}_page")) for name in ("placed", "sent")}
    here = _page_of(side)
    return {
        "side": side, "max_size": files.limits(database)[0],
        "placed": spaces.list_files(database, side.partner.id, spaces.TO_PARTNER, pages["placed"]),
        "sent": spaces.list_files(database, side.partner.id, spaces.FROM_PARTNER, pages["sent"]),
        # Each list's pages keep the other list where it is.
        "placed_href": f"{here}?sent_page={pages['sent']}&placed_page=",
        "sent_href": f"{here}?placed_page={pages['placed']}&sent_page=",
        "on_their_way": spaces.uploads_on_their_way(database, side.partner.id, side.sends),
        "upload_endpoint": f"{side.base}/tus/", "upload_list": f"{side.base}/list",
    }


def _file(request: Request, side: Side, file_id: str) -> spaces.SpaceFile:
    """A file of this space, or a 404; a partner trying another space's file is audited."""
    found = spaces.get(common.db(request), side.partner.id, file_id[:100])
    if found is None:
        if side.by_partner:
            common.db(request).write(lambda db: audit.record(
                db, common.who(request), "space.refused", side.partner.email, file=file_id[:100],
                path=request.url.path[:300]))
        raise NotFoundException()
    return found


# -- the bodies, for both sides -------------------------------------------------------------------

def show_list(request: Request, side: Side) -> Response:
    return common.render(request, "spaces/_lists.html", **context(request, side))


def _counted(request: Request, response: Response, side: Side, chosen: list[spaces.SpaceFile],
             whole_from_start: bool) -> Response:
    """Stream, and once every byte went out (of a whole file from its first byte, or of a zip)
    record the other side's retrieval."""
    state, who = request.app.state, common.who(request)

    def done(sent: int, whole: bool) -> None:
        if whole and whole_from_start:
            spaces.record_retrieval(state.db, who, side.by_partner, chosen)

    return downloads.counted(request, response, done)


def download_one(request: Request, side: Side, file_id: str) -> Response:
    found = _file(request, side, file_id)
    stored = found.stored()
    wanted = downloads.effective_range(request, stored)
    whole = wanted is None or (isinstance(wanted, tuple) and wanted == (0, stored.size))
    return _counted(request, downloads.file_response(request, stored), side, [found], whole)


def download_zip(request: Request, side: Side) -> Response:
    """``<base>/zip?id=A&id=B``: files of this space only; any other id is a 404."""
    ids = list(dict.fromkeys(request.query_params.getall("id", [])))[:1000]
    chosen = [_file(request, side, file_id) for file_id in ids]
    if not chosen:
        raise NotFoundException()
    return _counted(request, downloads.zip_response(request, [f.stored() for f in chosen]), side, chosen, True)


def confirm_delete(request: Request, side: Side, file_id: str) -> Response:
    found = _file(request, side, file_id)
    return common.render(request, "spaces/confirm.html", side=side, file=found)


def delete_file(request: Request, side: Side, file_id: str, data: common.ConfirmForm) -> Redirect:
    found = _file(request, side, file_id)
    if not data.given:
        return Redirect(f"{side.base}/files/{found.id}/delete", status_code=303)
    spaces.delete(common.db(request), request.app.state.config.files_dir, common.who(request), side.partner.id, found.id)
    return Redirect(_page_of(side) + "?notice=deleted", status_code=303)


def _page_of(side: Side) -> str:
    return "/space" if side.by_partner else f"/partners/{side.partner.id}"


def _notify(request: Request, side: Side) -> None:
    """Tell the other side, once this side's last upload of the batch is in."""
    spaces.notify(common.db(request), request.app.state.config.base_url, side.partner.id, side.sends)


async def upload_form(request: Request, side: Side, page) -> Response:
    answer = await file_views.form_upload(request, side.target, _page_of(side) + "?notice=uploaded", page)
    if answer.status_code == 303:
        await common.in_thread(_notify, request, side)
    return answer


async def append(request: Request, side: Side, upload_id: str) -> Response:
    place = tus.Place(side.target, f"{side.base}/tus/")
    answer = await tus.append(request, place, upload_id)
    if answer.status_code == 204 and "Upload-Expires" not in answer.headers:  # the last byte came: complete
        await common.in_thread(_notify, request, side)
    return answer


def _place(side: Side) -> tus.Place:
    return tus.Place(side.target, f"{side.base}/tus/")


# -- the partner's side: /space -----------------------------------------------------------------------

@get("/", name="space", sync_to_thread=True)
def show_space(request: Request) -> Response:
    """The partner's page after login: their space, their access and their contact person."""
    side = partner_side(request)
    notice = NOTICES.get(request.query_params.get("notice", ""), "")
    if request.query_params.get("notice") == "password_changed":
        notice = N_("Your password has been changed.")
    return common.render(request, "spaces/page.html", partner=side.partner, notice=notice, **context(request, side))


def _partner_page(request: Request, status: int, error: str) -> Response:
    side = partner_side(request)
    return common.render(request, "spaces/page.html", status_code=status, partner=side.partner, error=error,
                         **context(request, side))


@get("/list", sync_to_thread=True)
def partner_list(request: Request) -> Response:
    return show_list(request, partner_side(request))


@get("/files/{file_id:str}", sync_to_thread=True)
def partner_download(request: Request, file_id: str) -> Response:
    return download_one(request, partner_side(request), file_id)


@get("/zip", sync_to_thread=True)
def partner_zip(request: Request) -> Response:
    return download_zip(request, partner_side(request))


@get("/files/{file_id:str}/delete", sync_to_thread=True)
def partner_confirm_delete(request: Request, file_id: str) -> Response:
    return confirm_delete(request, partner_side(request), file_id)


@post("/files/{file_id:str}/delete", sync_to_thread=True)
def partner_delete(request: Request, file_id: str, data: Annotated[common.ConfirmForm, common.FORM]) -> Redirect:
    return delete_file(request, partner_side(request), file_id, data)


@post("/upload", opt=framework.WITHOUT_CSRF_MIDDLEWARE, request_max_body_size=None)
async def partner_upload(request: Request) -> Response:
    side = await common.in_thread(partner_side, request)
    return await upload_form(request, side, lambda status, error: _partner_page(request, status, error))


# tus into the partner's own space (Litestar puts a handler on one router only: thin copies).

@route("/", http_method=["OPTIONS"], sync_to_thread=True)
def partner_tus_describe(request: Request) -> Response:
    return tus.describe(request, _place(partner_side(request)))


@post("/", sync_to_thread=True)
def partner_tus_create(request: Request) -> Response:
    return tus.create(request, _place(partner_side(request)))


@head("/{upload_id:str}", sync_to_thread=True)
def partner_tus_offset(request: Request, upload_id: str) -> Response[None]:
    return tus.offset_of(request, _place(partner_side(request)), upload_id)


@patch("/{upload_id:str}", request_max_body_size=None)
async def partner_tus_append(request: Request, upload_id: str) -> Response:
    side = await common.in_thread(partner_side, request)
    return await append(request, side, upload_id)


@delete("/{upload_id:str}", status_code=200, sync_to_thread=True)
def partner_tus_terminate(request: Request, upload_id: str) -> Response:
    return tus.terminate(request, _place(partner_side(request)), upload_id)


# -- staff's side: /partners/<id>/space -------------------------------------------------------------

def _staff_page(request: Request, partner_id: int, status: int, error: str) -> Response:
    from views import partners as partner_views  # the partner's page holds the space (it imports this module)

    return partner_views.detail_page(request, partner_id, status, error)


@get("/list", sync_to_thread=True)
def staff_list(request: Request, partner_id: int) -> Response:
    return show_list(request, staff_side(request, partner_id))


@get("/files/{file_id:str}", sync_to_thread=True)
def staff_download(request: Request, partner_id: int, file_id: str) -> Response:
    return download_one(request, staff_side(request, partner_id), file_id)


@get("/zip", sync_to_thread=True)
def staff_zip(request: Request, partner_id: int) -> Response:
    return download_zip(request, staff_side(request, partner_id))


@get("/files/{file_id:str}/delete", sync_to_thread=True)
def staff_confirm_delete(request: Request, partner_id: int, file_id: str) -> Response:
    return confirm_delete(request, staff_side(request, partner_id), file_id)


@post("/files/{file_id:str}/delete", sync_to_thread=True)
def staff_delete(request: Request, partner_id: int, file_id: str,
                 data: Annotated[common.ConfirmForm, common.FORM]) -> Redirect:
    return delete_file(request, staff_side(request, partner_id), file_id, data)


@post("/upload", opt=framework.WITHOUT_CSRF_MIDDLEWARE, request_max_body_size=None)
async def staff_upload(request: Request, partner_id: int) -> Response:
    side = await common.in_thread(staff_side, request, partner_id)
    return await upload_form(request, side, lambda status, error: _staff_page(request, partner_id, status, error))


@route("/", http_method=["OPTIONS"], sync_to_thread=True)
def staff_tus_describe(request: Request, partner_id: int) -> Response:
    return tus.describe(request, _place(staff_side(request, partner_id)))


@post("/", sync_to_thread=True)
def staff_tus_create(request: Request, partner_id: int) -> Response:
    return tus.create(request, _place(staff_side(request, partner_id)))


@head("/{upload_id:str}", sync_to_thread=True)
def staff_tus_offset(request: Request, partner_id: int, upload_id: str) -> Response[None]:
    return tus.offset_of(request, _place(staff_side(request, partner_id)), upload_id)


@patch("/{upload_id:str}", request_max_body_size=None)
async def staff_tus_append(request: Request, partner_id: int, upload_id: str) -> Response:
    side = await common.in_thread(staff_side, request, partner_id)
    return await append(request, side, upload_id)


@delete("/{upload_id:str}", status_code=200, sync_to_thread=True)
def staff_tus_terminate(request: Request, partner_id: int, upload_id: str) -> Response:
    return tus.terminate(request, _place(staff_side(request, partner_id)), upload_id)


routes = [
    Router(path="/space", guards=[common.requires_partner],
           route_handlers=[show_space, partner_list, partner_download, partner_zip, partner_confirm_delete,
                           partner_delete, partner_upload]),
    Router(path="/space/tus", guards=[common.requires_partner], exception_handlers=tus.EXCEPTION_HANDLERS,
           route_handlers=[partner_tus_describe, partner_tus_create, partner_tus_offset, partner_tus_append,
                           partner_tus_terminate]),
    Router(path="/partners/{partner_id:int}/space", guards=[common.requires_staff],
           route_handlers=[staff_list, staff_download, staff_zip, staff_confirm_delete, staff_delete, staff_upload]),
    Router(path="/partners/{partner_id:int}/space/tus", guards=[common.requires_staff],
           exception_handlers=tus.EXCEPTION_HANDLERS,
           route_handlers=[staff_tus_describe, staff_tus_create, staff_tus_offset, staff_tus_append,
                           staff_tus_terminate]),
]
