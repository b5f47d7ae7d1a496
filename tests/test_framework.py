"""views/framework.py against Litestar itself: each undocumented behaviour Relais relies on.

These run on a tiny Litestar app of their own, so that a Litestar upgrade that changes one of
them fails here with a name, not somewhere in an upload or an error page.
"""

from __future__ import annotations


import pytest
from litestar import Litestar, Request, post
from litestar.config.csrf import CSRFConfig
from litestar.exceptions import PermissionDeniedException
from litestar.template.base import csrf_token
from litestar.testing import TestClient

from views import framework
from tests import aio

SECRET = "0123456789abcdef" * 4
seen: dict = {}


@post("/check", opt=framework.WITHOUT_CSRF_MIDDLEWARE)
async def check(request: Request) -> dict:
    """Excluded from the middleware: checks the token itself, from the body, as the form upload does."""
    body = (await request.body()).decode()
    return {"ours": framework.csrf_token_matches(request, body)}


@post("/page", opt=framework.WITHOUT_CSRF_MIDDLEWARE)
async def page(request: Request) -> dict:
    """A route the middleware skips, rendering a page: the token its forms get, and what the
    templates' csrf_token() then reads from the scope."""
    given = framework.page_csrf_token(request)
    return {"given": given, "template": csrf_token({"request": request})}


@post("/protected")
async def protected() -> dict:
    return {"passed": True}


@post("/refused")
async def refused() -> None:
    raise PermissionDeniedException()  # as a guard refuses


@post("/stream", opt=framework.WITHOUT_CSRF_MIDDLEWARE, request_max_body_size=None)
async def stream(request: Request) -> dict:
    try:
        async for _ in request.stream():
            pass
    except framework.ClientDisconnected:
        seen["disconnected"] = True
        return {}
    seen["disconnected"] = False
    return {}


def remember(request: Request, exc: PermissionDeniedException):
    from litestar import Response

    seen["csrf"] = framework.is_csrf_failure(exc)
    return Response({"forbidden": True}, status_code=403)


def make_app() -> Litestar:
    return Litestar([check, page, protected, refused, stream], csrf_config=CSRFConfig(secret=SECRET, cookie_name="csrf"),
                    exception_handlers={PermissionDeniedException: remember}, debug=False)


@pytest.fixture
def client():
    seen.clear()
    with TestClient(make_app()) as test_client:
        test_client.get("/schema")  # any GET: the middleware sets its cookie
        yield test_client


def token(client) -> str:
    return client.cookies["csrf"]


def test_our_token_check_agrees_with_the_middleware(client):
    good = token(client)
    forged = good[:-1] + ("0" if good[-1] != "0" else "1")
    for candidate, valid in [(good, True), (forged, False), ("x" * 64, False), ("", False),
                             (good[:framework.CSRF_SECRET_LENGTH], False)]:
        ours = client.post("/check", content=candidate.encode()).json()["ours"]
        middleware = client.post("/protected", headers={"x-csrftoken": candidate}).status_code == 201
        assert ours is middleware is valid, candidate
    assert client.post("/check", content=("é" * 80).encode()).json()["ours"] is False  # no header can carry it


def test_the_token_check_needs_the_cookie(client):
    good = token(client)
    client.cookies.clear()
    assert client.post("/check", content=good.encode()).json()["ours"] is False


def test_a_route_with_the_option_is_left_alone_by_the_middleware(client):
    """No token at all, a multipart body: the middleware neither refuses nor reads it."""
    body = b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n"
    response = client.post("/check", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 201 and response.json() == {"ours": False}


def test_a_page_the_middleware_skips_gets_the_cookies_token_when_it_is_genuine(client):
    good = token(client)
    assert client.post("/page").json() == {"given": good, "template": good}
    assert client.post("/protected", headers={"x-csrftoken": good}).status_code == 201  # it passes afterwards
    client.cookies["csrf"] = good[:-1] + ("0" if good[-1] != "0" else "1")  # forged: no token rather than it
    assert client.post("/page").json() == {"given": "", "template": ""}
    client.cookies.clear()
    assert client.post("/page").json() == {"given": "", "template": ""}


def test_a_csrf_refusal_is_told_apart_from_a_guards(client):
    assert client.post("/protected").status_code == 403
    assert seen["csrf"] is True
    assert client.post("/refused", headers={"x-csrftoken": token(client)}).status_code == 403
    assert seen["csrf"] is False


def test_a_client_going_away_mid_body_raises_client_disconnected():
    """Driven over raw ASGI: a first chunk, then the disconnect the server reports."""
    seen.clear()
    app = make_app()
    messages = [{"type": "http.request", "body": b"part", "more_body": True}, {"type": "http.disconnect"}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        pass

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/stream", "raw_path": b"/stream", "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"application/octet-stream")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80), "state": {}}
    aio.run(app(scope, receive, send))
    assert seen["disconnected"] is True


def test_litestar_decodes_multipart_fields_strictly_and_urlencoded_leniently():
    """What views.errors.bad_encoding and views.middleware.strict_utf8_middleware are for: if
    Litestar starts refusing invalid UTF-8 itself, both can go."""
    from litestar._multipart import parse_multipart_form
    from litestar._parsers import parse_url_encoded_form_data

    async def chunks():
        yield b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n\xff\r\n--b--\r\n"

    with pytest.raises(UnicodeDecodeError):
        aio.run(parse_multipart_form(chunks(), b"b"))
    assert parse_url_encoded_form_data(b"x=%FF") == {"x": "\ufffd"}


def test_no_other_module_reaches_into_litestar():
    """The internals above are reached through views/framework.py only."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sources = [root / "app.py", *(root / "views").glob("*.py"), *(root / "relais").rglob("*.py")]
    offenders = [
        f"{path.relative_to(root)}: {needle}"
        for path in sources if path.name != "framework.py"
        for needle in ("litestar.middleware.csrf", "litestar._", "csrf_config.", "InternalServerException",
                       "CSRF token verification")
        if needle in path.read_text()
    ]
    assert offenders == []
