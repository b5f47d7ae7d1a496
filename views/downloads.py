"""Downloads, in one place: Content-Disposition, Range (206/416, If-Range), and zips built on the fly.

Litestar's ``File`` response has no Range support and gives non-ASCII names only ``filename*``,
which some clients ignore; so responses for stored files are built here and nowhere else. Bytes
come from :func:`relais.storage.read_range`, which decrypts only the segments a range needs; the
event loop decrypts blocks the page cache holds and leaves reads from the disk to worker threads
(:func:`views.streaming.decrypted`); zips are built in a worker thread.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from urllib.parse import quote

import zipstream
from anyio import CancelScope
from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.response import Stream

from relais import audit, clock, files, storage
from views import common, streaming

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _ascii(text: str) -> str:
    """Letters without their accents, other non-ASCII dropped, quotes and backslashes replaced."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9._ ()+,;=@-]", "_", plain).strip(" .")


def content_disposition(name: str) -> str:
    """``attachment`` with a plain ASCII ``filename`` for old clients and the exact name in ``filename*``."""
    stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
    fallback = (_ascii(stem) or "download") + (f".{_ascii(ext)}" if dot and _ascii(ext) else "")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """One ``bytes=`` range as (start, end exclusive); None to send the whole file (no header, a
    malformed one or several ranges, as RFC 9110 allows); ``"unsatisfiable"`` for 416."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0:
            return "unsatisfiable"
        return max(size - length, 0), size
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if last and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, end


def _etag(stored: files.StoredFile) -> str:
    return f'"{stored.sha256}"'  # stored files never change, so their hash is a strong validator


def effective_range(request: Request, stored: files.StoredFile) -> tuple[int, int] | None | str:
    """The range this request gets of the file, If-Range included: what :func:`file_response`
    sends and what a caller counting the bytes must record, worked out in one place so the two
    never disagree (a stale If-Range sends the whole file from byte 0, not the asked range)."""
    wanted = parse_range(request.headers.get("range"), stored.size)
    if_range = request.headers.get("if-range")
    if wanted is not None and if_range is not None and if_range.strip() != _etag(stored):
        return None  # the client holds parts of another version: send all of this one
    return wanted


def file_response(request: Request, stored: files.StoredFile) -> Response:
    """The whole file (200) or one range of it (206), or 416; never cached, never sniffed."""
    state = request.app.state
    key = files.key_of(state.db, state.file_keys, stored)
    path = files.data_path(state.config.files_dir, stored)
    headers = {
        "Content-Disposition": content_disposition(stored.name), "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store", "Accept-Ranges": "bytes", "ETag": _etag(stored),
    }
    wanted = effective_range(request, stored)
    if wanted == "unsatisfiable":
        return Response(content=b"", status_code=416, headers={**headers, "Content-Range": f"bytes */{stored.size}"})
    start, end = wanted or (0, stored.size)
    chunks = storage.read_range(path, key, stored.id, start, end)  # checks the file before the response starts
    status = 206 if wanted else 200
    if wanted:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{stored.size}"
    headers["Content-Length"] = str(end - start)
    common.db(request).write(lambda db: audit.record(
        db, common.who(request), "file.download", stored.id, name=stored.name, start=start, end=end))
    return Stream(streaming.decrypted(chunks, state.workers), status_code=status, media_type=stored.media_type, headers=headers)


def zip_response(request: Request, chosen: list[files.StoredFile]) -> Response:
    """Several files as one zip, built while it is sent: stored, not compressed, so its size is
    known in advance (Content-Length) and the CPU goes to decryption only."""
    state = request.app.state
    archive = zipstream.ZipStream(sized=True)
    seen: set[str] = set()
    for stored in chosen:
        name, n = stored.name, 1
        while name.lower() in seen:  # two files of the same name: "a (2).csv"
            n += 1
            stem, dot, ext = stored.name.rpartition(".")
            name = f"{stem} ({n}).{ext}" if dot else f"{stored.name} ({n})"
        seen.add(name.lower())
        archive.add(_lazy(state, stored), name, size=stored.size)
    stamp = clock.now().strftime("%Y-%m-%d")
    common.db(request).write(lambda db: audit.record(
        db, common.who(request), "file.download_zip", ",".join(s.id for s in chosen), count=len(chosen)))
    headers = {"Content-Disposition": content_disposition(f"relais-{stamp}.zip"), "X-Content-Type-Options": "nosniff",
               "Cache-Control": "no-store", "Content-Length": str(len(archive))}
    return Stream(streaming.prefetch(archive, state.workers), media_type="application/zip", headers=headers)


def counted(request: Request, response: Response, done: Callable[[int, bool], None]) -> Response:
    """Stream ``response`` while counting what goes out, keeping the session alive; once it
    ended, ``done(bytes sent, whole)`` runs in a worker thread. Whole means every byte went out,
    not that the iterator ran to its end: a client that has all it was promised may close the
    connection before the server notices. A 416 (no stream) is returned as it is."""
    if not isinstance(response, Stream):
        return response
    inner, length = response.iterator, int(response.headers["Content-Length"])

    async def counting():
        sent = 0
        try:
            async for chunk in inner:
                sent += len(chunk)
                yield chunk
        finally:
            # Shielded: a client that disconnects cancels the response, never the bookkeeping.
            with CancelScope(shield=True):
                close = getattr(inner, "aclose", None)
                if close is not None:
                    await close()
                await common.in_thread(done, sent, sent == length)

    response.iterator = streaming.kept_alive(request, counting())
    return response


def _lazy(state, stored: files.StoredFile):
    """Open a member only when the zip reaches it, so a long zip holds one file open at a time."""
    key = files.key_of(state.db, state.file_keys, stored)
    yield from storage.read_range(files.data_path(state.config.files_dir, stored), key, stored.id)


@get("/{file_id:str}", guards=[common.requires_staff], name="file_download", sync_to_thread=True)
def download_file(request: Request, file_id: str) -> Response:
    stored = files.get(common.db(request), common.current_user(request).id, file_id)
    if stored is None:
        raise NotFoundException()
    return _kept_alive(request, file_response(request, stored))


@get("/zip", guards=[common.requires_staff], name="files_zip", sync_to_thread=True)
def download_zip(request: Request) -> Response:
    """``/files/zip?id=A&id=B``: the person's own complete files only; any other id is a 404."""
    ids = list(dict.fromkeys(request.query_params.getall("id", [])))[:1000]
    user = common.current_user(request)
    chosen = [files.get(common.db(request), user.id, file_id) for file_id in ids]
    if not chosen or None in chosen:
        raise NotFoundException()
    return _kept_alive(request, zip_response(request, chosen))


def _kept_alive(request: Request, response: Response) -> Response:
    """A staff download is activity: a long one keeps its session alive while it is sent."""
    if isinstance(response, Stream):
        response.iterator = streaming.kept_alive(request, response.iterator)
    return response

