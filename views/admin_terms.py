"""The terms of use for admins: edit the texts, publish them as a new version after a
confirmation, and see who accepted which version (the rules are in relais.terms)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from litestar import Request, Response, Router, get, post
from litestar.response import Redirect

from relais import i18n, paging, terms
from relais.i18n import N_
from views import common

ERRORS = {
    "title_required": N_("%(language_name)s: enter a title."),
    "body_required": N_("%(language_name)s: enter the text of the terms."),
    "title_too_long": N_("%(language_name)s: the title is longer than %(maximum)s characters."),
    "body_too_long": N_("%(language_name)s: the text is longer than %(maximum)s characters."),
    "too_many_paragraphs": N_("%(language_name)s: the text has more than %(maximum)s paragraphs."),
    "control_character": N_("%(language_name)s: the text contains a control character (such as a NUL byte). Remove it, or paste the text again as plain text."),
    "unchanged": N_("Nothing changed: the texts are those of the version in force. Edit them before publishing."),
    "changed_meanwhile": N_("Another admin published version %(version)s meanwhile. Your texts are kept below: check them against it, then publish again."),
}


@dataclass
class TermsForm:
    """The edit form (and the same texts carried by the confirmation page in hidden fields)."""

    title_en: str = ""
    body_en: str = ""
    title_nl: str = ""
    body_nl: str = ""
    title_fr: str = ""
    body_fr: str = ""
    title_de: str = ""
    body_de: str = ""
    based_on: str = ""  # the version the texts were edited from
    confirm: str = ""
    back: str = ""  # the confirmation page's "back to editing": the form again, with these texts

    def texts(self) -> dict[str, tuple[str, str]]:
        return {lang: (getattr(self, f"title_{lang}"), getattr(self, f"body_{lang}")) for lang in terms.EDIT_LANGUAGES}

    @property
    def given(self) -> bool:
        return self.confirm == "yes"

    def base(self) -> int:
        found = terms.number(self.based_on)
        return -1 if found is None else found


def language_names(request: Request) -> dict[str, str]:
    """Each edit language's name in the admin's language ("French", "Frans")."""
    return {code: i18n.locale(code).get_display_name(common.lang(request)).capitalize() for code in terms.EDIT_LANGUAGES}


def _edit_page(request: Request, texts: dict[str, tuple[str, str]] | None = None, status: int = 200,
               error: terms.TermsError | None = None) -> Response:
    """The version in force and the form; ``texts`` as the admin typed them, else the version's."""
    database = common.db(request)
    version = database.read_sync(terms.in_force)
    # After a publish's redirect: a version that exists, never whatever the query string says.
    published = terms.number(request.query_params.get("published"))
    message = ""
    if error is not None:
        shown = {key: value for key, value in error.variables.items() if key not in ("language", "field")}
        if "language" in error.variables:
            shown["language_name"] = language_names(request)[error.variables["language"]]
        template = ERRORS[error.reason]
        message = common.gettext(request, template, **shown)
    return common.render(
        request, "admin/terms.html", status_code=status, version=version, texts=texts or version.texts,
        edited=texts is not None, error=message, error_at=error.variables if error is not None else {},
        languages=terms.EDIT_LANGUAGES, language_names=language_names(request), max_title=terms.MAX_TITLE, max_body=terms.MAX_BODY,
        not_accepted=database.read_sync(terms.not_accepted, version.number),
        published=published if published is not None and 1 <= published <= version.number else None,
    )


def _refused(request: Request, data: TermsForm, exc: terms.TermsError) -> Response:
    """The form again with the admin's texts and the reason; nothing was written."""
    return _edit_page(request, data.texts(), 409 if exc.reason == "changed_meanwhile" else 400, exc)


@get("/terms", name="admin_terms", sync_to_thread=True)
def show_terms(request: Request) -> Response:
    return _edit_page(request)


@post("/terms", sync_to_thread=True)
def review_terms(request: Request, data: Annotated[TermsForm, common.FORM]) -> Response:
    """The edited texts: refused with the reason, or the confirmation page naming what changes."""
    if data.back:
        return _edit_page(request, data.texts())
    try:
        found = common.db(request).read_sync(terms.review, data.texts(), data.base())
    except terms.TermsError as exc:
        return _refused(request, data, exc)
    return common.render(request, "admin/terms_confirm.html", review=found, based_on=data.base(),
                         languages=terms.EDIT_LANGUAGES, language_names=language_names(request))


@post("/terms/publish", sync_to_thread=True)
def publish_terms(request: Request, data: Annotated[TermsForm, common.FORM]) -> Response:
    """Publish the confirmed texts as the next version, checked again in the same write."""
    if not data.given:
        return Redirect("/admin/terms", status_code=303)
    try:
        version = common.db(request).write(terms.publish, common.who(request), data.texts(), data.base())
    except terms.TermsError as exc:
        return _refused(request, data, exc)
    return Redirect(f"/admin/terms?published={version}", status_code=303)


@get("/terms/acceptances", name="admin_terms_acceptances", sync_to_thread=True)
def show_acceptances(request: Request, version: str = "") -> Response:
    """Per version how many accepted, and who accepted, newest first, of one version or all."""
    database = common.db(request)
    chosen = terms.number(version)
    page = paging.number(request.query_params.get("page"))
    return common.render(
        request, "admin/terms_acceptances.html", chosen=chosen,
        versions=database.read_sync(terms.versions, paging.number(request.query_params.get("versions_page"))),
        rows=database.read_sync(terms.acceptances, chosen, page),
        current=database.read_sync(terms.current_version),
    )


routes = [Router(path="/admin", guards=[common.requires_admin],
                 route_handlers=[show_terms, review_terms, publish_terms, show_acceptances])]
