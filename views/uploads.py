"""tus 1.0.0 under /tus/: creation, HEAD, PATCH, termination, expiration and checksum.

https://tus.io/protocols/resumable-upload. Bodies are streamed from ``request.stream()``, gathered
into blocks of at least 1 MiB and handed to worker threads, which hash, encrypt and write them, so
the event loop never waits on the disk or the cipher. Every upload belongs to a target
(:mod:`relais.targets`), built from who is asking: here a staff member's My files; a guest's
request link has its own routes (:mod:`views.request_uploads`) over the same functions, which
take the target (a :class:`Place`). Its owner resumes it from any of their sessions; anyone else
gets 404, as if it did not exist. A transfer counts as activity: a PATCH keeps its session alive
however long it runs.

Every answer is one a tus client understands: a status with ``Tus-Resumable`` and a short text
in the person's language (the uploader shows it), never a redirect to the login page: no
session is 401, a CSRF failure 403 (see ``exception_handlers``).

CSRF: tus clients send ``x-csrftoken`` as a header. Litestar's CSRF middleware reads only the
header for these requests (it parses a body only for form content types, and a PATCH is
``application/offset+octet-stream``), so the body is never buffered and no exclusion is needed.
HEAD and OPTIONS are safe methods and change nothing. The answers and error handlers every tus
router shares are in :mod:`views.tus_answers`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
from dataclasses import dataclass
from email.utils import format_datetime

from litestar import Request, Response, Router, delete, head, patch, post, route

from relais import clock, files, space, storage, targets, uploads
from relais.i18n import N_
from relais.spool import Spool
from views import common, streaming
from views.tus_answers import EXCEPTION_HANDLERS, LOGGED_OUT, TUS_VERSION, respond, say

log = logging.getLogger("relais")

CHECKSUMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
# Every text goes to a person through the uploader, so each is translated (tus clients read the
# status codes and headers).
RESTARTING = N_("The server is restarting. The upload will go on by itself.")
TOO_MUCH = N_("More data than the announced length.")
EXPIRED = N_("This upload was not finished within 24 hours and has been removed. Add the file again.")


def _refused(request: Request, exc: files.FileRefused) -> Response:
    status = {"too_large": 413, "too_many": 403, "request_too_many": 403, "request_closed": 410}.get(exc.reason, 400)
    return say(request, status, files.REASONS[exc.reason], **exc.variables)


def _expires(upload: uploads.Upload) -> str:
    return format_datetime(clock.parse(upload.expires_at), usegmt=True)


def _engine(request: Request) -> uploads.Engine:
    return request.app.state.uploads


@dataclass(frozen=True)
class Place:
    """Where the asker's uploads go, as the handlers below take it: the target, the path the
    uploads' URLs start with, and what a 401 tells the person (how to get their session back)."""

    target: targets.Target
    base: str = "/tus/"
    logged_out: str = LOGGED_OUT


def target_of(request: Request) -> targets.Target:
    """Whom a staff member speaks for (the guard let only staff through): their own My files.
    The plain-form upload (views.files) asks here too, so both ways in land in the same place."""
    return targets.Target.my_files(common.current_user(request).id)


def _staff(request: Request) -> Place:
    return Place(target_of(request))


def find(request: Request, place: Place, upload_id: str) -> uploads.Upload | Response:
    """The asker's upload, or the answer for it: 404 (none, or another's), 410 (expired)."""
    upload = _engine(request).find(upload_id, place.target)
    if upload is None:
        return respond(404)
    if upload.expired:
        return say(request, 410, EXPIRED)
    return upload


def parse_metadata(header: str) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs; ValueError if malformed."""
    metadata = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, value = pair.partition(" ")
        try:
            metadata[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError(key) from None
    return metadata


def _checksum(header: str | None) -> tuple[str, bytes] | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``; ValueError when malformed or unsupported."""
    if not header:
        return None
    name, _, digest = header.strip().partition(" ")
    if name not in CHECKSUMS:
        raise ValueError(name)
    try:
        return name, base64.b64decode(digest.strip(), validate=True)
    except binascii.Error:
        raise ValueError(name) from None


# -- the handlers' bodies, for every kind of target ---------------------------------------------------

def describe(request: Request, place: Place) -> Response:
    target = place.target
    max_size = targets.kind(target).max_size(common.db(request), target)
    return Response(content=b"", status_code=204, headers={
        "Tus-Resumable": TUS_VERSION, "Tus-Version": TUS_VERSION, "Tus-Max-Size": str(max_size),
        "Tus-Extension": "creation,termination,expiration,checksum", "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
    })


def create(request: Request, place: Place) -> Response:
    """Creation: check the name, type, size and count before accepting a byte."""
    if request.headers.get("tus-resumable") != TUS_VERSION:
        return respond(412, {"Tus-Version": TUS_VERSION})
    try:
        length = int(request.headers.get("upload-length", ""))
        metadata = parse_metadata(request.headers.get("upload-metadata", ""))
    except ValueError:
        return say(request, 400, N_("Upload-Length and Upload-Metadata are required."))
    if length < 0:
        return respond(400)
    try:
        upload = _engine(request).create(place.target, metadata.get("filename", ""), length, common.who(request))
    except files.FileRefused as exc:
        return _refused(request, exc)
    return respond(201, {"Location": f"{place.base}{upload.id}", "Upload-Expires": _expires(upload)})


def offset_of(request: Request, place: Place, upload_id: str) -> Response:
    """The offset to continue from (see uploads.resume_offset: after a restart it comes from disk)."""
    upload = find(request, place, upload_id)
    if isinstance(upload, Response):
        return upload
    offset = _engine(request).resume_offset(common.who(request), upload)
    if offset is None:
        return respond(404)
    return Response(content=b"", status_code=200, media_type="text/plain", headers={
        "Tus-Resumable": TUS_VERSION, "Upload-Offset": str(offset), "Upload-Length": str(upload.length),
        "Upload-Expires": _expires(upload), "Cache-Control": "no-store",
    })


async def append(request: Request, place: Place, upload_id: str) -> Response:
    """Append the body at Upload-Offset; the offset is made durable before it is reported."""
    upload = await common.on_disk(request, find, request, place, upload_id)
    if isinstance(upload, Response):
        return upload
    if request.headers.get("tus-resumable") != TUS_VERSION:
        return respond(412, {"Tus-Version": TUS_VERSION})
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/offset+octet-stream":
        return respond(415)
    try:
        offset = int(request.headers.get("upload-offset", ""))
        checksum = _checksum(request.headers.get("upload-checksum"))
        declared = int(request.headers.get("content-length", "0"))
    except ValueError:
        return say(request, 400, N_("Upload-Offset is missing, or the checksum algorithm is not supported."))
    engine = _engine(request)
    if not engine.claim(upload.id):
        return say(request, 409, N_("This upload is already receiving data."))
    try:
        writer = await common.on_disk(request, engine.writer_for, upload)
        if writer is None:  # finished on disk before a crash: commit it now
            await common.on_disk(request, engine.finish, common.who(request), upload, None)
            return respond(204, {"Upload-Offset": str(upload.length)})
        if offset != writer.offset:
            return respond(409, {"Upload-Offset": str(writer.offset)})
        if declared > upload.length - offset:
            return say(request, 413, TOO_MUCH)
        receive = _receive_checked if checksum else _receive
        new_offset, problem = await receive(request, place, engine, upload, writer, checksum)
        if problem:
            return problem
        headers = {"Upload-Offset": str(new_offset)}
        if new_offset == upload.length:
            await common.on_disk(request, engine.finish, common.who(request), upload, writer)
        else:
            headers["Upload-Expires"] = _expires(upload)
        return respond(204, headers)
    except asyncio.CancelledError:
        # The server is stopping and its grace period (RELAIS_STOP_GRACE_SECONDS) is over. What
        # arrived is on disk up to the last checkpoint (and whole segments after it); a commit
        # already running in its thread may still complete. Answer so that the client retries,
        # instead of ending with a stack trace in the log.
        asyncio.current_task().uncancel()
        log.info("upload %s cut off: the server is stopping; it resumes from its last checkpoint", upload.id)
        return say(request, 503, RESTARTING)
    except files.FileRefused as exc:
        return _refused(request, exc)
    except OSError as exc:  # disk full, I/O error: the writer closed itself; the next PATCH resumes
        log.error("upload %s: %s", upload.id, exc)
        await common.on_disk(request, engine.forget, upload.id)
        return say(request, 507, N_("The server could not store the data (disk full?). Try again later."))
    except storage.StorageError:
        log.exception("upload %s cannot continue", upload.id)
        await common.on_disk(request, engine.forget, upload.id)
        return respond(500)
    finally:
        engine.release(upload.id)


async def _receive(request, place, engine, upload, writer, checksum) -> tuple[int, Response | None]:
    """Stream into the writer, checkpointing on the way and at the end, even after a disconnect.

    A checkpoint on the way runs beside the writes that follow it (it makes durable what was
    written when it started), so the body keeps flowing while the disk catches up. The session
    is kept alive on the way; one that ended meanwhile (logged out) ends the PATCH with 401, after
    the checkpoint: its owner resumes it after logging in again.
    """
    # Each block leaves the database's reserve free (relais.space): a disk filled meanwhile stops
    # the PATCH with 507, keeping what arrived, and the instance goes on serving.
    write = space.checked(request.app.state.config.files_dir, writer.write)
    pipeline, since_checkpoint, problem = streaming.Pipeline(write, request.app.state.workers), 0, None
    checkpointing: asyncio.Future | None = None
    keep_alive = streaming.KeepAlive(request)
    try:
        async for block in streaming.blocks(request, upload.length - writer.offset, first=writer.to_boundary):
            await pipeline.write(block)
            await keep_alive()
            since_checkpoint += len(block)
            if since_checkpoint >= uploads.CHECKPOINT_BYTES:
                if checkpointing is not None:
                    await checkpointing
                checkpointing = asyncio.ensure_future(common.on_disk(request, engine.checkpoint, upload, writer))
                since_checkpoint = 0
    except streaming.SessionEnded:
        problem = say(request, 401, place.logged_out)
    except streaming.Disconnected:
        pass  # keep what arrived: the client asks for the offset and sends the rest
    except streaming.Stopping:
        problem = say(request, 503, RESTARTING)  # after the checkpoint below: the client resumes
    except streaming.TooMuchData:
        problem = say(request, 413, TOO_MUCH)
    finally:
        try:
            await pipeline.drain()
        finally:
            if checkpointing is not None:
                await checkpointing
    offset = await common.on_disk(request, engine.checkpoint, upload, writer)
    if problem is None:
        try:
            await keep_alive()
        except streaming.SessionEnded:
            problem = say(request, 401, place.logged_out)
    return offset, problem


async def _receive_checked(request, place, engine, upload, writer, checksum) -> tuple[int, Response | None]:
    """With Upload-Checksum the chunk is held in an encrypted spool in data/tmp and verified before
    the writer sees a byte of it."""
    name, expected = checksum
    hasher = CHECKSUMS[name]()
    keep_alive = streaming.KeepAlive(request)
    # Made and removed in a disk thread too: creating and unlinking a file may wait for the disk.
    held = await common.on_disk(request, Spool, request.app.state.config.tmp_dir)
    try:
        try:
            async for block in streaming.blocks(request, upload.length - writer.offset):
                await common.on_disk(request, lambda b: (hasher.update(b), held.write(b)), block)
                await keep_alive()
        except streaming.SessionEnded:
            return writer.offset, say(request, 401, place.logged_out)  # nothing of the chunk was stored
        except streaming.Disconnected:
            return writer.offset, respond(400)  # an incomplete chunk cannot match its checksum
        except streaming.Stopping:
            return writer.offset, say(request, 503, RESTARTING)  # the client sends the chunk again
        except streaming.TooMuchData:
            return writer.offset, say(request, 413, TOO_MUCH)
        if not hmac.compare_digest(hasher.digest(), expected):
            return writer.offset, say(request, 460, N_("Checksum mismatch: the chunk was not stored."))
        plaintext, write = held.blocks(), space.checked(request.app.state.config.files_dir, writer.write)
        while (block := await common.on_disk(request, next, plaintext, None)) is not None:
            await common.on_disk(request, write, block)
    finally:
        await common.on_disk(request, held.close)
    offset = await common.on_disk(request, engine.checkpoint, upload, writer)
    try:
        await keep_alive()
    except streaming.SessionEnded:  # stored; after a new login the client asks for the offset
        return offset, say(request, 401, place.logged_out)
    return offset, None


def terminate(request: Request, place: Place, upload_id: str) -> Response:
    upload = find(request, place, upload_id)
    if isinstance(upload, Response):
        return upload
    if not _engine(request).terminate(common.who(request), upload):
        return respond(409)  # a PATCH is writing to it
    return respond(204)


# -- a staff member's uploads, into their My files ---------------------------------------------------
# Litestar cannot put one handler on two routers: each router has thin handlers of its own.

@route("/", http_method=["OPTIONS"], guards=[common.requires_staff], sync_to_thread=True)
def describe_server(request: Request) -> Response:
    return describe(request, _staff(request))


@post("/", guards=[common.requires_staff], sync_to_thread=True)
def create_upload(request: Request) -> Response:
    return create(request, _staff(request))


@head("/{upload_id:str}", guards=[common.requires_staff], sync_to_thread=True)
def upload_offset(request: Request, upload_id: str) -> Response[None]:
    return offset_of(request, _staff(request), upload_id)


# No fixed body limit here: each PATCH is held to what remains of its upload's announced length,
# which was checked against the size setting when the upload was created.
@patch("/{upload_id:str}", guards=[common.requires_staff], request_max_body_size=None)
async def append_to_upload(request: Request, upload_id: str) -> Response:
    return await append(request, _staff(request), upload_id)


@delete("/{upload_id:str}", guards=[common.requires_staff], status_code=200, sync_to_thread=True)
def terminate_upload(request: Request, upload_id: str) -> Response:
    return terminate(request, _staff(request), upload_id)


routes = [Router(
    path="/tus", route_handlers=[describe_server, create_upload, upload_offset, append_to_upload, terminate_upload],
    exception_handlers=EXCEPTION_HANDLERS,
)]
