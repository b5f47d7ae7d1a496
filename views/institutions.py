"""Institutions, for staff: each with its partners and the files in their spaces, in both ways
(the counts and the rename are in relais.institutions). Under /partners, behind the same guard;
renaming is for admins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from litestar import Request, Response, Router, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect

from relais import institutions, paging, partners, spaces
from relais.i18n import N_
from views import common

ERRORS = {
    "name_required": N_("Enter the institution's name."),
    "name_taken": N_("Another institution already has this name. Partners of both cannot be put together here."),
}
PARTNERS_PER_PAGE = 20  # each comes with the newest files of their space
FILES_PER_WAY = 10  # of each partner's space, each way: the rest is on the partner's page


@dataclass
class RenameForm:
    name: str = ""


@get("/", name="institutions", sync_to_thread=True)
def list_institutions(request: Request) -> Response:
    """Every institution by name, with how many partners it has and what waits in their spaces."""
    page = institutions.list_page(common.db(request), paging.number(request.query_params.get("page")))
    return common.render(request, "partners/institutions.html", institutions=page)


def _institution_page(request: Request, institution_id: int, status: int = 200, error: str = "",
                      name: str | None = None) -> Response:
    database = common.db(request)
    institution = institutions.get(database, institution_id)
    if institution is None:
        raise NotFoundException()
    members = partners.of_institution(database, institution_id, paging.number(request.query_params.get("page")),
                                      PARTNERS_PER_PAGE)
    return common.render(request, "partners/institution.html", status_code=status, institution=institution,
                         members=members, space=spaces.counts(database, [p.id for p in members]),
                         space_files=spaces.newest_of_partners(database, [p.id for p in members], FILES_PER_WAY),
                         error=error,
                         name=institution.name if name is None else name,
                         renamed="renamed" in request.query_params)


@get("/{institution_id:int}", name="institution", sync_to_thread=True)
def show_institution(request: Request, institution_id: int) -> Response:
    """The institution's partners, and for each the files of their space both ways."""
    return _institution_page(request, institution_id)


@post("/{institution_id:int}", guards=[common.requires_admin], sync_to_thread=True)
def rename_institution(request: Request, institution_id: int, data: Annotated[RenameForm, common.FORM]) -> Response:
    try:
        renamed = institutions.rename(common.db(request), common.who(request), institution_id, data.name)
    except institutions.InstitutionError as exc:
        if exc.reason == "not_found":
            raise NotFoundException() from exc
        return _institution_page(request, institution_id, 400, common.gettext(request, ERRORS[exc.reason]), data.name)
    # The same name again changes nothing: no "renamed" notice for it.
    return Redirect(f"/partners/institutions/{institution_id}" + ("?renamed" if renamed else ""), status_code=303)


routes = [
    Router(path="/partners/institutions", guards=[common.requires_staff],
           route_handlers=[list_institutions, show_institution, rename_institution]),
]
