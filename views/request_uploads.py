"""tus for a request's guest, under /r/<token>/tus/: the handlers of views.uploads, into the request.

The target comes from the link session (views.request_links.guest), never from the URL alone:
an upload of another request is a 404, as if absent. Every answer is a tus answer in the guest's
language: no link session (it ended, or this browser never typed the password) is a 401 saying
how to get it back, after which the same file goes on where it stopped; a link that no longer
takes files (closed, expired, revoked) is a 410, and an unfinished upload of it is removed then,
so nothing of it stays. Each answer sets the link session's cookie again: an upload keeps it alive.
"""

from __future__ import annotations

from litestar import Request, Response, Router, delete, head, patch, post, route
from litestar.exceptions import NotAuthorizedException

from relais import files, links, requests, targets
from relais.i18n import N_
from views import common
from views import links as link_views
from views import request_links
from views import uploads as tus

KIND = requests.KIND

ENDED = N_("Your access to this link has ended. Open the link from the e-mail again and type the password, then"
           " add the same file: the upload goes on where it stopped.")


def _place(request: Request, token: str) -> tuple[tus.Place, request_links.Guest] | None:
    visitor = request_links.guest(request, token)
    if visitor is None:
        return None
    return tus.Place(visitor.target, f"/r/{token}/tus/", ENDED), visitor


def _no_entry(request: Request, token: str, upload_id: str | None = None) -> Response:
    """No way in: 401 while the link is open (the guest types the password again), else 410,
    and an unfinished upload of this browser's session into the ended link is removed."""
    database = common.db(request)
    found = links.find_open(database, KIND, token)
    if found is not None:
        request_links.speak(request, found)
        return tus.say(request, 401, ENDED)
    # Only to remove what can never complete: session_after_close lets no one upload.
    ended = links.session_after_close(database, KIND, token, request.cookies.get(link_views._cookie_name(token)))
    if ended is not None:
        request_links.speak(request, ended)
        if upload_id:
            engine = request.app.state.uploads
            upload = engine.find(upload_id, targets.Target.request(ended.id))
            if upload is not None:
                engine.terminate(common.who(request), upload)
    return tus.say(request, 410, files.REASONS["request_closed"])


def _answer(request: Request, token: str, upload_id: str | None, body) -> Response:
    entry = _place(request, token)
    if entry is None:
        return _no_entry(request, token, upload_id)
    place, visitor = entry
    return request_links.kept(body(place), request, token, visitor)


@route("/", http_method=["OPTIONS"], sync_to_thread=True)
def describe_server(request: Request, token: str) -> Response:
    return _answer(request, token, None, lambda place: tus.describe(request, place))


@post("/", sync_to_thread=True)
def create_upload(request: Request, token: str) -> Response:
    return _answer(request, token, None, lambda place: tus.create(request, place))


@head("/{upload_id:str}", sync_to_thread=True)
def upload_offset(request: Request, token: str, upload_id: str) -> Response[None]:
    return _answer(request, token, upload_id, lambda place: tus.offset_of(request, place, upload_id))


@patch("/{upload_id:str}", request_max_body_size=None)
async def append_to_upload(request: Request, token: str, upload_id: str) -> Response:
    entry = await common.on_disk(request, _place, request, token)
    if entry is None:
        return await common.on_disk(request, _no_entry, request, token, upload_id)
    place, visitor = entry
    answer = await tus.append(request, place, upload_id)
    if answer.status_code == 401:  # the link session ended, or the link stopped taking files, meanwhile
        return await common.on_disk(request, _cut_off, request, token, place, upload_id, answer)
    return request_links.kept(answer, request, token, visitor)


def _cut_off(request: Request, token: str, place: tus.Place, upload_id: str, answer: Response) -> Response:
    """A PATCH let in at its start whose link stopped taking files on the way (revoked, closed,
    expired): the upload can never complete, so it goes now (410). A link session that merely
    ended keeps it for the guest to resume after the password (401)."""
    if links.still_open(common.db(request), KIND, place.target.id):
        return answer
    engine = request.app.state.uploads
    upload = engine.find(upload_id, place.target)
    if upload is not None:
        engine.terminate(common.who(request), upload)
    return tus.say(request, 410, files.REASONS["request_closed"])


@delete("/{upload_id:str}", status_code=200, sync_to_thread=True)
def terminate_upload(request: Request, token: str, upload_id: str) -> Response:
    return _answer(request, token, upload_id, lambda place: tus.terminate(request, place, upload_id))


def _ended(request: Request, exc: NotAuthorizedException) -> Response:
    return tus.say(request, 401, ENDED)


routes = [Router(
    path="/r/{token:str}/tus",
    route_handlers=[describe_server, create_upload, upload_offset, append_to_upload, terminate_upload],
    exception_handlers={**tus.EXCEPTION_HANDLERS, NotAuthorizedException: _ended},
)]
