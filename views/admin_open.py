"""The admin's "Open links": every open share, request and space file with whose it is and its
deadlines, nearest deadline first, filtered by kind, person and deadline (:mod:`relais.open_items`).
Each row leads to the page where the admin acts: the share's or request's own page (admins may
open, extend and revoke everyone's), the partner's page for a space file."""

from __future__ import annotations

from urllib.parse import urlencode

from litestar import Request, Router, get
from litestar.response import Response

from relais import open_items
from views import common


def _href(filters: open_items.Filters, **cursor) -> str:
    query = {k: v for k, v in filters.query().items() if v}
    return "/admin/open?" + urlencode({**query, **{k: str(v) for k, v in cursor.items()}})


@get("/open", name="admin_open", sync_to_thread=True)
def show_open(request: Request) -> Response:
    filters = open_items.from_query(request.query_params)
    rows = open_items.listed(common.db(request), filters, after=open_items.key(request.query_params.get("after")),
                             before=open_items.key(request.query_params.get("before")))
    return common.render(
        request, "admin/open.html", rows=rows, filters=filters, kinds=open_items.KINDS,
        sooner_href=_href(filters, before=rows.sooner) if rows.sooner else "",
        later_href=_href(filters, after=rows.later) if rows.later else "",
    )


routes = [Router(path="/admin", guards=[common.requires_admin], route_handlers=[show_open])]
