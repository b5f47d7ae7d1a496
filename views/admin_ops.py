"""Admin pages for running the service: the mail outbox (what waits, what failed, what went, and
retrying now) and the storage page (the data folder's disk, what Relais holds on it, and the
free-space warning of :mod:`relais.capacity`)."""

from __future__ import annotations

from urllib.parse import urlencode

from litestar import Request, Router, get, post
from litestar.response import Redirect, Response

from relais import audit_labels, capacity, mail, paging
from relais.i18n import N_
from views import common

RETRY_ERRORS = {
    "unknown": N_("This e-mail is not in the outbox."),
    "sent": N_("This e-mail was already sent: there is nothing to retry."),
}
LISTS = tuple(mail.LISTS)  # the outbox page's lists, each paged by its own query parameter


def _pager_href(lists: dict[str, paging.Page], which: str) -> str:
    """The URL of list ``which``'s pages up to its page number: the other lists stay on theirs."""
    others = {name: rows.number for name, rows in lists.items() if name != which and rows.number > 1}
    return "/admin/outbox?" + urlencode({**others, which: ""})


def _outbox_page(request: Request, status: int = 200, error: str = "") -> Response:
    lists = {which: mail.listed(common.db(request), which, paging.number(request.query_params.get(which)))
             for which in LISTS}
    hrefs = {which: _pager_href(lists, which) for which in LISTS}
    return common.render(request, "admin/outbox.html", status_code=status, lists=lists, hrefs=hrefs, error=error,
                         kinds=audit_labels.VALUES["kind"], retried=paging.row_id(request.query_params.get("retried")),
                         retried_all=paging.row_id(request.query_params.get("retried_all")))


@get("/outbox", name="admin_outbox", sync_to_thread=True)
def show_outbox(request: Request) -> Response:
    return _outbox_page(request)


@post("/outbox/{outbox_id:int}/retry", sync_to_thread=True)
def retry_mail(request: Request, outbox_id: int) -> Response | Redirect:
    """Make one unsent mail due now and wake the sender; a sent or unknown one changes nothing."""
    try:
        row = common.db(request).write(mail.retry, common.who(request), outbox_id)
    except mail.RetryRefused as exc:
        message = RETRY_ERRORS[exc.reason]
        return _outbox_page(request, 404 if exc.reason == "unknown" else 409, common.gettext(request, message))
    request.app.state.mail_sender.wake()
    return Redirect("/admin/outbox?" + urlencode({"retried": row["id"]}), status_code=303)


@post("/outbox/retry", sync_to_thread=True)
def retry_failed_mail(request: Request) -> Redirect:
    retried = common.db(request).write(mail.retry_failed, common.who(request))
    request.app.state.mail_sender.wake()
    return Redirect("/admin/outbox?" + urlencode({"retried_all": retried}), status_code=303)


@get("/storage", name="admin_storage", sync_to_thread=True)
def show_storage(request: Request) -> Response:
    """The data folder's disk now, what Relais holds on it, and the warning's threshold and state."""
    database, config = common.db(request), request.app.state.config
    usage = capacity.fullest(config)
    threshold = database.read_sync(capacity.threshold)
    return common.render(request, "admin/storage.html", usage=usage, held=capacity.held(database, config),
                         threshold=threshold, below=usage.below(threshold),
                         warning=database.read_sync(capacity.open_warning), data_dir=config.data_dir.resolve())


routes = [Router(path="/admin", guards=[common.requires_admin],
                 route_handlers=[show_outbox, retry_mail, retry_failed_mail, show_storage])]
