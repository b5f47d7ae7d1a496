"""A staff member's own files: the "My files" page, its htmx list, delete, and the no-JavaScript upload.

The form upload (:func:`form_upload`, which a guest's request link uses too, into its own target)
is streamed through the ``multipart`` package's push parser straight into the
encrypted store, never through Litestar's form parser (which spools each file to a temporary file
and would hold the whole body before the handler runs). For the same reason the route is excluded
from Litestar's CSRF middleware, which parses the whole multipart body when the token is not in
a header (and a plain form cannot send headers): the token is checked here instead, with the same
HMAC, and it must arrive as the first field, before any byte of a file is accepted.
"""

from __future__ import annotations

import functools

import logging

from litestar import Request, Response, Router, get, post
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template
from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header

from relais import files, paging, space, targets
from relais.i18n import N_
from relais.refusal import Size
from views import common, downloads, errors, framework, streaming
from views import uploads as tus

log = logging.getLogger("relais")

NOTICES = {
    "uploaded": N_("Your files were uploaded."),
    "deleted": N_("The file was deleted. It can no longer be recovered."),
}


class _FormProblem(Exception):
    def __init__(self, status: int, message: str, **variables):
        super().__init__(message)
        self.status, self.message, self.variables = status, message, variables


def _page(request: Request, status: int = 200, error: str = "", partial: bool = False) -> Response:
    user = common.current_user(request)
    template = "files/_list.html" if partial else "files/page.html"
    notice = request.query_params.get("notice", "")
    listed = files.list_files(common.db(request), user.id, paging.number(request.query_params.get("page")))
    return common.render(
        request, template, status_code=status, files=listed, error=error,
        notice=NOTICES.get(notice, ""),
        max_size=files.limits(common.db(request))[0],
    )


@get("/", name="files", guards=[common.requires_staff], sync_to_thread=True)
def show_files(request: Request) -> Response:
    """The page, or for htmx (after an upload completes) only the list."""
    return _page(request, partial=bool(request.headers.get("hx-request")))


@post("/{file_id:str}/delete", guards=[common.requires_staff], sync_to_thread=True)
def delete_file(request: Request, file_id: str) -> Template | Redirect:
    user = common.current_user(request)
    try:
        deleted = files.delete(common.db(request), request.app.state.config.files_dir, common.who(request), user.id, file_id)
    except files.FileInShare as exc:
        # Deleting it alone would leave the recipients a link to nothing: the share decides.
        return _in_share(request, exc.share_id)
    if not deleted:
        raise NotFoundException()
    if request.headers.get("hx-request"):
        return _page(request, partial=True)
    return Redirect("/files?notice=deleted", status_code=303)


def _in_share(request: Request, share_id: str) -> Template:
    """The refusal, with the way to the share; for htmx (a list open since before the file was
    sent) the refreshed list under the message, as a 200 so that htmx shows it."""
    user = common.current_user(request)
    htmx = bool(request.headers.get("hx-request"))
    return common.render(
        request, "files/_in_share.html" if htmx else "files/page.html", status_code=200 if htmx else 409,
        files=files.list_files(common.db(request), user.id), error="", notice="", in_share=share_id, partial=htmx,
        max_size=files.limits(common.db(request))[0],
    )


# No fixed body limit: each file in the body is held to the size setting as it streams in.
@post("/upload", guards=[common.requires_staff], opt=framework.WITHOUT_CSRF_MIDDLEWARE, request_max_body_size=None)
async def upload_form(request: Request) -> Template | Redirect:
    """The form upload for browsers without JavaScript; same rules as tus, nothing kept of a refused file."""
    return await form_upload(request, tus.target_of(request), "/files?notice=uploaded",
                             lambda status, error: _page(request, status, error))


STALE_FORM = N_("This form was open too long or came from another site. Reload the page and try again.")
# A form upload cannot resume (unlike tus): what arrived is not kept for a session that is gone.
SESSION_ENDED = N_("Your session ended during the upload, so the file was not kept. Log in again and upload it again.")


async def form_upload(request: Request, target: targets.Target, done: str, page,
                      session_ended: str = SESSION_ENDED) -> Response:
    """A multipart form's files streamed into ``target`` (its checks, limit and delivery, as for
    tus): a 303 to ``done`` when at least one was stored, else ``page(status, error)`` (run in a
    worker thread) saying what went wrong, in the person's language. ``session_ended`` is what
    they are told when their session (or link session) ends during the upload."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != "multipart/form-data" or not options.get("boundary"):
        return await common.in_thread(page, 400, common.gettext(request, "Choose a file to upload."))
    try:
        count = await _receive_form(request, target, options["boundary"], session_ended)
    except _FormProblem as problem:
        message = common.gettext(request, problem.message, **problem.variables)
        return await common.in_thread(page, problem.status, message)
    if count == 0:
        return await common.in_thread(page, 400, common.gettext(request, "Choose a file to upload."))
    return Redirect(done, status_code=303)


class _FormReceiver:
    """Feeds the push parser's events into the store: one part at a time, one file open at a time."""

    def __init__(self, request: Request, target: targets.Target, max_size: int):
        state = request.app.state
        self.request, self.target, self.max_size = request, target, max_size
        self.engine, self.files_dir, self.workers = state.uploads, state.config.files_dir, state.workers
        self.who = common.who(request)
        self.token: bytearray | None = None  # the _csrf_token part being read
        self.token_checked = False
        self.current: dict | None = None  # the file part being stored
        self.stored = 0

    async def start_part(self, part: MultipartSegment) -> None:
        if part.name == "_csrf_token" and part.filename is None and not self.token_checked:
            self.token = bytearray()
        elif part.filename is not None:
            if not self.token_checked:  # a file before a valid token: refused before a byte is stored
                raise _FormProblem(403, STALE_FORM)
            if part.filename:  # a file input left empty sends a part without a name: nothing to store
                # The target's checks, owner and delivery, as for tus (relais.uploads).
                file_id, writer = await common.on_disk(self.request, self.engine.begin_whole, self.target, part.filename,
                                                             self.who)
                self.current = {"id": file_id, "name": part.filename, "writer": writer, "parts": [], "block_size": 0, "size": 0,
                                "pipeline": streaming.Pipeline(space.checked(self.files_dir, writer.write), self.workers)}

    async def data(self, chunk) -> None:
        if self.token is not None:
            self.token += chunk
            if len(self.token) > 512:
                raise _FormProblem(400, N_("The request could not be understood. Go back and try again."))
        elif self.current is not None:  # other fields are ignored
            current = self.current
            current["size"] += len(chunk)
            if current["size"] > self.max_size:
                raise files.FileRefused("too_large", limit=Size(self.max_size))
            current["parts"].append(chunk)
            current["block_size"] += len(chunk)
            if current["block_size"] >= streaming.BLOCK:  # encrypted and written off the event loop
                await current["pipeline"].write(b"".join(current["parts"]))
                current["parts"], current["block_size"] = [], 0

    async def end_part(self) -> None:
        if self.token is not None:
            self.token_checked = framework.csrf_token_matches(self.request, self.token.decode("ascii", "replace"))
            self.token = None
            if not self.token_checked:
                raise _FormProblem(403, STALE_FORM)
        elif self.current is not None:
            current, self.current = self.current, None
            try:
                if current["parts"]:
                    await current["pipeline"].write(b"".join(current["parts"]))
                await current["pipeline"].drain()
                await common.on_disk(self.request, self.engine.complete_whole, self.who, self.target, current["id"],
                                     current["writer"])
            except BaseException:
                self.current = current  # so that abort() removes it
                raise
            self.stored += 1

    async def abort(self, reason: str) -> None:
        """Refused, cut off or failed mid-file: nothing of that file stays, and the trail says why."""
        if self.current is not None:
            try:
                await self.current["pipeline"].drain()  # never close the writer under a running write
            except Exception:
                pass  # the error that brought us here is being reported already
            # Closing waits for a sealing batch in flight: in a disk thread, never on the event loop.
            await common.on_disk(self.request, self.current["writer"].close)
            await common.on_disk(self.request, functools.partial(
                files.discard, self.engine.database, self.files_dir, self.current["id"], self.who, "upload.refused",
                reason=reason, name=self.current["name"][:255]))
            self.current = None


async def _receive_form(request: Request, target: targets.Target, boundary: str, session_ended: str) -> int:
    """Parse the body as it arrives; returns how many files were stored."""
    max_size = await common.on_disk(request, targets.kind(target).max_size, request.app.state.db, target)
    receiver = _FormReceiver(request, target, max_size)
    parser = PushMultipartParser(boundary, max_segment_count=1000)
    declared = request.headers.get("content-length", "")
    keep_alive = streaming.KeepAlive(request)  # a long upload is activity: its session must not idle out
    reason = "incomplete"  # what the audit row of a file left unfinished says, unless told otherwise
    try:
        # A body that cannot fit beside the database's reserve (relais.space) is refused before a
        # byte is read. A browser sends the body's length; without one (chunked) each block is
        # checked as it is written instead, which also stops this upload when others fill the disk.
        await common.on_disk(request, space.ensure_space, receiver.files_dir, paging.whole(declared, 18) or 0)
        async for chunk in request.stream():
            if not chunk:
                continue
            await keep_alive()
            for event in parser.parse(chunk):
                if isinstance(event, MultipartSegment):
                    await receiver.start_part(event)
                elif event is None:
                    await receiver.end_part()
                else:
                    await receiver.data(event)
        parser.close()  # raises if the body ended before the closing boundary
        await keep_alive()  # and at the end, so the page the upload leads to finds the session alive
    except streaming.SessionEnded:  # logged out, deactivated or past the absolute timeout meanwhile
        reason = "session_ended"
        raise _FormProblem(401, session_ended) from None
    except files.FileRefused as exc:
        reason = exc.reason
        status = {"too_large": 413, "request_too_many": 403, "request_closed": 410}.get(exc.reason, 400)
        raise _FormProblem(status, files.REASONS[exc.reason], **exc.variables) from None
    except (MultipartError, framework.ClientDisconnected):  # malformed, or the client went away
        raise _FormProblem(400, files.REASONS["incomplete"]) from None
    except OSError as exc:
        reason = "disk_full" if space.is_full(exc) else "error"
        if not space.is_full(exc):
            log.exception("form upload failed")
            raise _FormProblem(507, N_("The server could not store the data (disk full?). Try again later.")) from None
        log.error("form upload refused: %s", exc)  # an operator's problem, not a bug: no stack trace
        raise _FormProblem(507, errors.MESSAGES[507][1]) from None
    finally:
        await receiver.abort(reason)  # the partial file and its row go, freeing what they took
    if not receiver.token_checked:
        raise _FormProblem(403, STALE_FORM)
    return receiver.stored


routes = [Router(path="/files", route_handlers=[show_files, upload_form, delete_file, downloads.download_zip,
                                                  downloads.download_file])]
