"""The audit trail for admins: search it (person, action, object, dates, free text), page through
it, export what was found as CSV. The searching is :mod:`relais.audit_search`, the CSV
:mod:`relais.audit_export`; this module only reads the query string and answers."""

from __future__ import annotations

from urllib.parse import urlencode

from litestar import Request, Router, get
from litestar.response import Response, Stream

from relais import audit, audit_export, audit_labels, audit_search, paging
from views import common


def _href(filters: audit_search.Filters, **cursor) -> str:
    query = {k: v for k, v in filters.query().items() if v}
    return "/admin/audit?" + urlencode({**query, **cursor})


@get("/audit", name="admin_audit", sync_to_thread=True)
def show_audit(request: Request) -> Response:
    """The trail in the admin's language: labels for the codes, actors by name, details as lines."""
    filters = audit_search.from_query(request.query_params)
    language = common.lang(request)
    rows = audit_labels.found(common.db(request), filters, language,
                              older_than=paging.row_id(request.query_params.get("older")),
                              newer_than=paging.row_id(request.query_params.get("newer")))
    query = {k: v for k, v in filters.query().items() if v}
    return common.render(
        request, "admin/audit.html", rows=rows, filters=filters, actions=audit_search.action_choices(language),
        newer_href=_href(filters, newer=rows.newer) if rows.newer else "",
        older_href=_href(filters, older=rows.older) if rows.older else "",
        export_href="/admin/audit.csv" + ("?" + urlencode(query) if query else ""),
    )


@get("/audit.csv")
async def export_audit(request: Request) -> Stream:
    """Every row the search finds, as CSV, streamed; the export itself is audited first, with
    its filters and the last row it covers."""
    filters = audit_search.from_query(request.query_params)
    database, who = common.db(request), common.who(request)

    def start(db) -> int:
        through = audit_search.newest_id(db)
        audit.record(db, who, "audit.export", "", through=through, filters=filters.recorded())
        return through

    through = await database.write_async(start)
    return Stream(
        audit_export.stream(database, filters, common.lang(request), through), media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="relais-audit.csv"'},
    )


routes = [Router(path="/admin", guards=[common.requires_admin], route_handlers=[show_audit, export_audit])]
