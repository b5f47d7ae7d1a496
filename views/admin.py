"""Admin pages: accounts and settings (the audit trail is in views/audit.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from litestar import Request, Router, get, post
from litestar.response import Redirect, Template

from relais import auth, paging, partners, settings, shares, two_factor, users
from relais.i18n import N_
from views import common
from views import partners as partner_views

USER_ERRORS = {
    "invalid_email": N_("Enter a valid e-mail address, such as name@example.org."),
    "email_taken": N_("An account with this e-mail address already exists."),
    "invalid_role": N_("Choose a role."),
    "last_admin": N_("The last active admin cannot be deactivated."),
    "last_admin_role": N_("The last active admin cannot become staff: make another account an admin first."),
    "partner_role": N_("A partner account never becomes staff or admin, nor a staff account a partner."),
    "not_found": N_("This account does not exist."),
    "inactive": N_("Reactivate the account first."),
}
SEARCH_LIMIT = 100  # characters of the search box kept


def _no_such_account(request: Request) -> Template:
    """The accounts page, saying the account asked for does not exist (the key is not looked up
    inside the gettext call: the extractor would take it for a text)."""
    message = USER_ERRORS["not_found"]
    return _users_page(request, 404, common.gettext(request, message))


@dataclass
class NewUserForm:
    email: str = ""
    name: str = ""
    role: str = "staff"


@dataclass
class RoleForm(common.ConfirmForm):
    role: str = ""  # the role asked for, so that a second click after the change changes nothing


def _filters(request: Request) -> dict[str, str]:
    """The accounts page's role and search, as asked in the query string (a role it does not know: all)."""
    role = request.query_params.get("role", "")
    return {"role": role if role in users.ROLES else "", "q": request.query_params.get("q", "")[:SEARCH_LIMIT].strip()}


def _keep(request: Request) -> str:
    """The query string that brings the accounts page back as it was (role, search, page) after
    an action: each action's URL carries it, and so does its answer."""
    return _query(**_filters(request), page=request.query_params.get("page", ""))


def _query(**values: str) -> str:
    return urlencode({name: value for name, value in values.items() if value})


def _back(request: Request, notice: str = "") -> Redirect:
    query = "&".join(part for part in (notice, _keep(request)) if part)
    return Redirect("/admin/users" + (f"?{query}" if query else ""), status_code=303)


def _users_page(request: Request, status: int = 200, error: str = "", link: str = "", form=None,
                notice: str = "", link_for: users.User | None = None) -> Template:
    database, filters = common.db(request), _filters(request)
    accounts = users.list_users(database, paging.number(request.query_params.get("page")), role=filters["role"],
                                search=filters["q"])
    ids, chosen = [u.id for u in accounts], _query(**filters)
    return common.render(
        request, "admin/users.html", status_code=status, users=accounts, filters=filters, keep=_keep(request),
        pager_href=f"/admin/users?{chosen}&page=" if chosen else "/admin/users?page=",
        with_factor=two_factor.enrolled_among(database, ids), partners=partners.among(database, ids),
        error=error, link=link, link_for=link_for, notice=notice, form=form or NewUserForm(),
    )


def _error(request: Request, exc: users.UserError, status: int = 400) -> Template:
    return _users_page(request, status, common.gettext(request, USER_ERRORS[exc.reason]))


def _link_url(request: Request, token: str) -> str:
    return f"{request.app.state.config.base_url}/login/link/{token}"


@get("/users", name="admin_users", sync_to_thread=True)
def list_users(request: Request) -> Template:
    return _users_page(request)


@post("/users", sync_to_thread=True)
def create_user(request: Request, data: Annotated[NewUserForm, common.FORM]) -> Template:
    """Create a staff or admin account; its one-time login link is shown once, here."""
    if data.role not in ("staff", "admin"):
        data.role = ""
    try:
        user = users.create(
            common.db(request), common.hasher(request), common.who(request), email=data.email, name=data.name,
            role=data.role, created_by=common.current_user(request).id, language=common.lang(request),
        )
    except users.UserError as exc:
        return _users_page(request, 400, common.gettext(request, USER_ERRORS[exc.reason]), form=data)
    token = users.issue_login_link(common.db(request), common.who(request), user.id)
    return _users_page(request, 201, link=_link_url(request, token))


@post("/users/{user_id:int}/login-link", sync_to_thread=True)
def reset_user(request: Request, user_id: int) -> Template:
    """A new one-time link to choose a password (the old password stops working once it is used).
    A partner's is their activation link, shown once (:func:`reset_partner_access`)."""
    user = users.get(common.db(request), user_id)
    if user is None:
        return _no_such_account(request)
    if not user.is_staff:
        return _partner_link(request, user, by_mail=False)
    token = users.issue_login_link(common.db(request), common.who(request), user_id, purpose="reset")
    return _users_page(request, link=_link_url(request, token), link_for=user)


@post("/users/{user_id:int}/access", sync_to_thread=True)
def reset_partner_access(request: Request, user_id: int,
                         data: Annotated[partner_views.LinkForm, common.FORM]) -> Template:
    """A partner's access reset from the accounts page: the same one-time activation link as their
    page gives (relais.partners.issue_link), mailed to them or shown here once."""
    user = users.get(common.db(request), user_id)
    if user is None or user.is_staff:
        return _no_such_account(request)
    return _partner_link(request, user, by_mail=data.delivery != "shown")


def _partner_link(request: Request, user: users.User, by_mail: bool) -> Template:
    if not user.active:
        return _error(request, users.UserError("inactive"))
    base_url = request.app.state.config.base_url
    try:
        token = partners.issue_link(common.db(request), common.who(request), user.id, base_url, by_mail)
    except users.UserError:  # deactivated (or gone) since it was read above: another admin's click
        if users.get(common.db(request), user.id) is None:
            return _no_such_account(request)
        return _error(request, users.UserError("inactive"))
    if by_mail:
        return _users_page(request, notice="link_sent", link_for=user)
    return _users_page(request, link=partners.link_url(base_url, token), link_for=user)


@get("/users/{user_id:int}/role", name="admin_user_role", sync_to_thread=True)
def confirm_role_change(request: Request, user_id: int) -> Template:
    """Before making staff an admin or an admin staff: what the person gains or loses, at once."""
    database = common.db(request)
    user = users.get(database, user_id)
    if user is None:
        return _no_such_account(request)
    if not user.is_staff:
        return _error(request, users.UserError("partner_role"))
    to = "staff" if user.is_admin else "admin"
    has_factor = two_factor.status(database, user_id) is not None
    return common.render(request, "admin/role.html", account=user, to=to, keep=_keep(request),
                         itself=user.id == common.current_user(request).id,
                         enrol_next=not has_factor and database.read_sync(two_factor.required, to))


@post("/users/{user_id:int}/role", sync_to_thread=True)
def change_role(request: Request, user_id: int, data: Annotated[RoleForm, common.FORM]) -> Template | Redirect:
    if not data.given:
        kept = _keep(request)
        return Redirect(f"/admin/users/{user_id}/role" + (f"?{kept}" if kept else ""), status_code=303)
    try:
        changed = users.change_role(common.db(request), common.who(request), user_id, data.role)
    except users.UserError as exc:
        return _error(request, exc, 404 if exc.reason == "not_found" else 400)
    if user_id == common.current_user(request).id and data.role != "admin":
        return Redirect("/", status_code=303)  # no longer theirs to see
    return _back(request, "role_changed" if changed else "")  # no "changed" notice for nothing


@get("/users/{user_id:int}/deactivate", name="admin_user_deactivate", sync_to_thread=True)
def confirm_deactivate(request: Request, user_id: int) -> Template | Redirect:
    """Before deactivating: whose account, the sessions that end, and the shares it leaves open."""
    database = common.db(request)
    user = users.get(database, user_id)
    if user is None:
        return _no_such_account(request)
    if not user.active:
        return _back(request)
    return common.render(
        request, "admin/deactivate.html", account=user, sessions=auth.live_sessions(database, user_id),
        open_shares=shares.open_of_owner(database, user_id), keep=_keep(request),
    )


@post("/users/{user_id:int}/active", sync_to_thread=True)
def set_user_active(request: Request, user_id: int, data: Annotated[common.ConfirmForm, common.FORM],
                    active: bool = False) -> Template | Redirect:
    if not active and not data.given:  # reactivating loses nothing; deactivating asks first
        return Redirect(f"/admin/users/{user_id}/deactivate", status_code=303)
    try:
        users.set_active(common.db(request), common.who(request), user_id, active)
    except users.UserError as exc:
        return _error(request, exc)
    return _back(request)


@get("/users/{user_id:int}/two-factor/reset", name="admin_two_factor_reset", sync_to_thread=True)
def confirm_two_factor_reset(request: Request, user_id: int) -> Template | Redirect:
    """Before removing an account's second factor (a lost phone): whose, and what follows."""
    database = common.db(request)
    user = users.get(database, user_id)
    if user is None:
        return _no_such_account(request)
    factor = two_factor.status(database, user_id)
    if factor is None:
        return _back(request)
    return common.render(request, "admin/two_factor_reset.html", account=user, factor=factor, keep=_keep(request),
                         required=database.read_sync(two_factor.required, user.role))


@post("/users/{user_id:int}/two-factor/reset", sync_to_thread=True)
def reset_two_factor(request: Request, user_id: int, data: Annotated[common.ConfirmForm, common.FORM]) -> Template | Redirect:
    """Remove the factor and its recovery codes; the person enrols again where it is required."""
    if not data.given:
        return Redirect(f"/admin/users/{user_id}/two-factor/reset", status_code=303)
    try:
        two_factor.reset(common.db(request), common.who(request), user_id, keep_session=request.scope["auth"].id_hash)
    except two_factor.TwoFactorRefused:
        return _no_such_account(request)
    return _back(request, "two_factor_reset")


@get("/settings", name="admin_settings", sync_to_thread=True)
def show_settings(request: Request) -> Template:
    values = common.db(request).read_sync(settings.all_values)
    return common.render(request, "admin/settings.html", settings=settings.SETTINGS, values=values, error="")


@post("/settings")
async def save_settings(request: Request) -> Template | Redirect:
    """Save every changed setting, or none if one is out of range (nothing half-written)."""
    form = await request.form()
    database, who, user = common.db(request), common.who(request), common.current_user(request)
    values = await database.read(settings.all_values)
    changes = {}
    for name, setting in settings.SETTINGS.items():
        raw = str(form.get(name, values[name])).strip()
        number = paging.whole(raw, 12)
        if number is None or not setting.minimum <= number <= setting.maximum:
            error = common.gettext(
                request, "%(setting)s Enter a whole number from %(minimum)s to %(maximum)s.",
                setting=common.gettext(request, setting.help), minimum=setting.minimum, maximum=setting.maximum,
            )
            return await common.render_async(request, "admin/settings.html", status_code=400, settings=settings.SETTINGS,
                                             values={**values, name: raw}, error=error)
        if int(raw) != values[name]:
            changes[name] = int(raw)

    def save(db):
        for name, value in changes.items():
            settings.set_value(db, who, user.id, name, value)

    await database.write_async(save)
    return Redirect("/admin/settings?saved", status_code=303)


routes = [
    Router(
        path="/admin",
        guards=[common.requires_admin],
        route_handlers=[list_users, create_user, reset_user, reset_partner_access, confirm_role_change, change_role,
                        confirm_deactivate, set_user_active, confirm_two_factor_reset, reset_two_factor, show_settings,
                        save_settings],
    )
]
