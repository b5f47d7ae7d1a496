"""Partner accounts: staff's Partners pages, the partner's own page, forgotten passwords and the
page a partner whose access has ended sees at login (the rules are in relais.partners)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from litestar import Request, Response, Router, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect

from relais import auth, i18n, institutions, paging, partners, spaces, users
from relais.i18n import N_
from views import common
from views import spaces as space_views

ERRORS = {
    "invalid_email": N_("Enter a valid e-mail address, such as name@example.org."),
    "email_taken": N_("An account with this e-mail address already exists."),
    "not_found": N_("This account does not exist."),
    "name_required": N_("Enter the partner's full name."),
    "institution_required": N_("Enter the partner's institution."),
    "invalid_language": N_("Choose a language for the partner's e-mails."),
    "invalid_contact": N_("Choose a contact person among the active staff."),
}


@dataclass
class PartnerForm:
    email: str = ""
    name: str = ""
    function: str = ""
    phone: str = ""
    institution: str = ""
    language: str = ""
    contact_id: str = ""
    delivery: str = "mail"  # how the activation link reaches the partner: mail, or shown once here

    def details(self) -> partners.Details:
        contact = paging.whole(self.contact_id, 11) or 0
        return partners.Details(email=self.email, name=self.name, function=self.function, phone=self.phone,
                                institution=self.institution, language=self.language, contact_id=contact)

    @classmethod
    def of(cls, partner: partners.Partner) -> "PartnerForm":
        return cls(email=partner.email, name=partner.name, function=partner.function, phone=partner.phone,
                   institution=partner.institution, language=partner.language, contact_id=str(partner.contact_id))


@dataclass
class LinkForm:
    delivery: str = "mail"


@dataclass
class ForgotForm:
    email: str = ""


def _partner_or_404(request: Request, partner_id: int) -> partners.Partner:
    """Only a partner's id finds one: a staff account's id is as absent as an unknown one."""
    partner = partners.get(common.db(request), partner_id)
    if partner is None:
        raise NotFoundException()
    return partner


def _form_page(request: Request, template: str, status: int = 200, error: str = "", **context) -> Response:
    database = common.db(request)
    return common.render(request, template, status_code=status, error=error, contacts=partners.contacts(database),
                         institutions=institutions.names(database), languages=i18n.LANGUAGES,
                         language_names=i18n.NAMES, **context)


def _detail(request: Request, partner: partners.Partner, status: int = 200, error: str = "", link: str = "",
            notice: str = "", form: PartnerForm | None = None) -> Response:
    """The partner's page: their details and access, and their space (views.spaces)."""
    return _form_page(request, "partners/detail.html", status, error, partner=partner, form=form or PartnerForm.of(partner),
                      link=link, notice=notice, sessions=auth.live_sessions(common.db(request), partner.id),
                      **space_views.context(request, space_views.staff_side(request, partner.id)))


def detail_page(request: Request, partner_id: int, status: int = 200, error: str = "") -> Response:
    """The partner's page answering a form upload into their space that was refused."""
    return _detail(request, _partner_or_404(request, partner_id), status, error)


def _error(request: Request, exc: Exception) -> str:
    return common.gettext(request, ERRORS[exc.reason])


# -- staff's side --------------------------------------------------------------------------

@get("/", name="partners", sync_to_thread=True)
def list_partners(request: Request) -> Response:
    """Every partner, institution by institution, a page at a time."""
    database = common.db(request)
    groups = partners.grouped(database, paging.number(request.query_params.get("page")))
    return common.render(request, "partners/list.html", groups=groups,
                         space=spaces.counts(database, [p.id for _, members in groups for p in members]))


@get("/new", name="partner_new", sync_to_thread=True)
def new_partner(request: Request) -> Response:
    user = common.current_user(request)
    return _form_page(request, "partners/new.html", form=PartnerForm(language=common.lang(request), contact_id=str(user.id)))


@post("/", sync_to_thread=True)
def create_partner(request: Request, data: Annotated[PartnerForm, common.FORM]) -> Response:
    """Create the account and its activation link: mailed, or shown once on the page that follows."""
    database, who, user = common.db(request), common.who(request), common.current_user(request)
    try:
        partner = partners.create(database, who, data.details(), created_by=user.id)
    except (partners.PartnerError, users.UserError) as exc:
        return _form_page(request, "partners/new.html", 400, _error(request, exc), form=data)
    return _issue(request, partner, data.delivery, 201)


def _issue(request: Request, partner: partners.Partner, delivery: str, status: int = 200) -> Response:
    by_mail = delivery != "shown"
    token = partners.issue_link(common.db(request), common.who(request), partner.id, request.app.state.config.base_url,
                                by_mail)
    partner = partners.get(common.db(request), partner.id)
    if by_mail:
        return _detail(request, partner, status, notice="link_sent")
    return _detail(request, partner, status, link=partners.link_url(request.app.state.config.base_url, token))


@get("/{partner_id:int}", name="partner", sync_to_thread=True)
def show_partner(request: Request, partner_id: int) -> Response:
    return _detail(request, _partner_or_404(request, partner_id), notice=request.query_params.get("notice", ""))


@post("/{partner_id:int}", sync_to_thread=True)
def update_partner(request: Request, partner_id: int, data: Annotated[PartnerForm, common.FORM]) -> Response:
    partner = _partner_or_404(request, partner_id)
    try:
        partners.update(common.db(request), common.who(request), partner_id, data.details(),
                        common.current_user(request).id)
    except (partners.PartnerError, users.UserError) as exc:
        return _detail(request, partner, 400, _error(request, exc), form=data)
    return Redirect(f"/partners/{partner_id}?notice=saved", status_code=303)


@post("/{partner_id:int}/link", sync_to_thread=True)
def new_link(request: Request, partner_id: int, data: Annotated[LinkForm, common.FORM]) -> Response:
    """Renew access (or activate again): a new one-time link; the partner then chooses a password."""
    partner = _partner_or_404(request, partner_id)
    if not partner.active:
        return _detail(request, partner, 400, common.gettext(request, N_("Reactivate the account first.")))
    return _issue(request, partner, data.delivery)


@get("/{partner_id:int}/deactivate", name="partner_deactivate", sync_to_thread=True)
def confirm_deactivate(request: Request, partner_id: int) -> Response:
    partner = _partner_or_404(request, partner_id)
    if not partner.active:
        return Redirect(f"/partners/{partner_id}", status_code=303)
    return common.render(request, "partners/confirm.html", partner=partner, action="deactivate",
                         sessions=auth.live_sessions(common.db(request), partner_id))


@post("/{partner_id:int}/active", sync_to_thread=True)
def set_active(request: Request, partner_id: int, data: Annotated[common.ConfirmForm, common.FORM],
               active: bool = False) -> Redirect:
    """Deactivating (asked first) ends every session; reactivating loses nothing."""
    _partner_or_404(request, partner_id)
    if not active and not data.given:
        return Redirect(f"/partners/{partner_id}/deactivate", status_code=303)
    users.set_active(common.db(request), common.who(request), partner_id, active)
    return Redirect(f"/partners/{partner_id}?notice={'reactivated' if active else 'deactivated'}", status_code=303)


@get("/{partner_id:int}/sessions", name="partner_sessions", sync_to_thread=True)
def confirm_end_sessions(request: Request, partner_id: int) -> Response:
    partner = _partner_or_404(request, partner_id)
    return common.render(request, "partners/confirm.html", partner=partner, action="sessions",
                         sessions=auth.live_sessions(common.db(request), partner_id))


@post("/{partner_id:int}/sessions", sync_to_thread=True)
def end_sessions(request: Request, partner_id: int, data: Annotated[common.ConfirmForm, common.FORM]) -> Redirect:
    _partner_or_404(request, partner_id)
    if not data.given:
        return Redirect(f"/partners/{partner_id}/sessions", status_code=303)
    partners.end_sessions(common.db(request), common.who(request), partner_id)
    return Redirect(f"/partners/{partner_id}?notice=sessions_ended", status_code=303)


# -- the partner's side, and the login page's --------------------------------------------------

def expired_page(request: Request, user: users.User) -> Response:
    """The answer to a partner's right password once their access has ended: whom to ask."""
    partner = partners.get(common.db(request), user.id)
    return common.render(request, "auth/expired.html", status_code=403, partner=partner,
                         registry_contact=request.app.state.config.registry_contact)


@get("/login/forgot", name="forgot_password", sync_to_thread=True)
def show_forgot(request: Request) -> Response:
    return common.render(request, "auth/forgot.html", sent=False, email="")


@post("/login/forgot", sync_to_thread=True)
def submit_forgot(request: Request, data: Annotated[ForgotForm, common.FORM]) -> Response:
    """The same answer whatever the address: whether it has an account is not for the asker to learn."""
    config = request.app.state.config
    partners.forgot_password(common.db(request), common.who(request), data.email[:300], config.base_url,
                             config.registry_contact)
    return common.render(request, "auth/forgot.html", sent=True, email="")


routes = [
    Router(path="/partners", guards=[common.requires_staff],
           route_handlers=[list_partners, new_partner, create_partner, show_partner, update_partner, new_link,
                           confirm_deactivate, set_active, confirm_end_sessions, end_sessions]),
    Router(path="/", route_handlers=[show_forgot, submit_forgot]),
]
