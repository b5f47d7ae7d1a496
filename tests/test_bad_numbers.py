"""Numbers from a request that are not what they look like: digits ``int()`` refuses ('²', '①')
in a query string, and path ids longer than SQLite's 64-bit integers. Each is the 404 page or
is read as no number, never a 500 (relais.paging.whole, views.middleware.no_oversized_ids)."""

from __future__ import annotations

import re

import pytest

from relais import paging
from tests.conftest import PASSWORD, audit_rows, csrf_token
from tests.test_partners import _concrete, _guards

HUGE = "99999999999999999999"  # 20 digits: past 2**63 - 1


@pytest.mark.parametrize("raw", ["²", "①", "1²", "٣", "𝟗", " 1", "-1", "", None])
def test_only_ascii_digits_are_whole_numbers(raw):
    assert paging.whole(raw, 6) is None
    assert paging.number(raw) == 1 and paging.row_id(raw) is None


def test_a_whole_number_has_at_most_its_digits():
    assert paging.whole("1234567", 6) is None and paging.number("1234567") == 1


def test_ascii_digits_are_read():
    assert paging.whole("042", 6) == 42 and paging.number("3") == 3 and paging.row_id("17") == 17


@pytest.mark.parametrize("path", [
    "/admin/users?page=%C2%B2", "/admin/open?within=%C2%B2", "/admin/open?within=%E2%91%A0",
    "/admin/outbox?retried=%C2%B2", "/admin/outbox?sent=%C2%B2", "/partners/institutions?page=%C2%B2",
    "/files?page=%C2%B2", "/admin/audit?older=%C2%B2",
])
def test_superscript_digits_in_a_query_are_no_number(auth, admin, path):
    auth.login(email=admin.email)
    response = auth.client.get(path)
    assert response.status_code == 200, response.text[:300]


def _int_routes(app):
    """(method, path with a huge id, the route's guards) for each staff or admin route with an int."""
    for route in app.routes:
        if ":int}" not in route.path:
            continue
        for handler in getattr(route, "route_handlers", []):
            guards = _guards(handler)
            if guards & {"requires_staff", "requires_admin"}:
                for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                    yield method, _concrete(re.sub(r"\{\w+:int\}", HUGE, route.path)), guards


@pytest.mark.parametrize("who", ["admin", "staff"])
def test_a_huge_id_in_any_path_is_not_found(app, client, auth, admin, staff, who):
    """Every route with an ``int`` path parameter, with every other part of the path as the route
    walk in tests/test_partners.py makes it: 404, or 403 where the route's guard refuses first."""
    auth.login(email=admin.email if who == "admin" else staff.email, password=PASSWORD)
    token = csrf_token(client)
    trail = len(audit_rows(app))
    tried = []
    for method, path, guards in _int_routes(app):
        response = client.request(method, path, data={"_csrf_token": token} if method == "POST" else None,
                                  headers={"x-csrftoken": token}, follow_redirects=False)
        expected = 403 if who == "staff" and "requires_admin" in guards else 404
        assert response.status_code == expected, (method, path, response.status_code)
        tried.append((method, path))
    assert ("GET", f"/partners/institutions/{HUGE}") in tried and ("POST", f"/admin/outbox/{HUGE}/retry") in tried
    assert ("GET", f"/admin/users/{HUGE}/role") in tried and len(tried) >= 10
    assert len(audit_rows(app)) == trail  # nothing was done
