"""No wrapped key survives a deletion, in relais.db or in its write-ahead log, whatever deleted it.

Each test reads the wrapped keys while the files exist, deletes them one way (My files, a share
deleted or revoked, retention, a tus termination or expiry, a refused form upload), and then
searches the raw bytes of ``relais.db`` and ``relais.db-wal`` for them.
"""

from __future__ import annotations

import pytest

from relais import files, retention
from tests.conftest import audit_rows, csrf_token
from tests.test_files import CSV, create, form_upload, patch, tus_headers, upload
from tests.test_shares import PDF, create_share, store


@pytest.fixture
def staff_client(client, auth, staff):
    auth.login()
    return client


def keys(app, *file_ids) -> list[bytes]:
    """The wrapped keys of these files, as stored (60 random-looking bytes each)."""
    found = [app.state.db.scalar("SELECT wrapped_key FROM files WHERE id = ?", [file_id]) for file_id in file_ids]
    assert all(isinstance(key, bytes) and len(key) == 60 for key in found)
    return found


def on_disk(app) -> bytes:
    path = app.state.db.path
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def assert_no_trace(app, wrapped: list[bytes]) -> None:
    raw = on_disk(app)
    for key in wrapped:
        # A half would do to recognise a key; none may be there.
        assert key[:30] not in raw and key[30:] not in raw
    assert app.state.db.query("SELECT id FROM files WHERE wrapped_key IN (%s)" % ",".join("?" * len(wrapped)), wrapped) == []


def test_the_keys_are_in_the_files_before_a_deletion(app, staff_client):
    """The check below finds a key when it is there (so its silence later means something)."""
    wrapped = keys(app, upload(staff_client, "here.csv", CSV))
    assert wrapped[0] in on_disk(app)


def test_deleting_from_my_files(app, staff_client):
    file_id = upload(staff_client, "mine.csv", CSV)
    wrapped = keys(app, file_id)
    response = staff_client.post(f"/files/{file_id}/delete", data={"_csrf_token": csrf_token(staff_client)},
                                 follow_redirects=False)
    assert response.status_code == 303
    assert_no_trace(app, wrapped)
    assert len(audit_rows(app, "file.delete")) == 1


def share(app, auth, staff) -> tuple[str, list[bytes]]:
    stored = [store(app, staff, "a.csv", CSV), store(app, staff, "b.pdf", PDF)]
    assert create_share(auth, [s.id for s in stored]).status_code == 200
    return app.state.db.scalar("SELECT id FROM shares"), keys(app, *(s.id for s in stored))


@pytest.mark.parametrize("action", ["delete", "revoke"])
def test_deleting_or_revoking_a_share(app, auth, staff, action):
    auth.login()
    share_id, wrapped = share(app, auth, staff)
    assert auth.post(f"/shares/{share_id}/{action}", {"confirm": "yes"}).status_code == 303
    assert_no_trace(app, wrapped)


def test_retention_of_a_locked_share(app, auth, staff):
    auth.login()
    share_id, wrapped = share(app, auth, staff)
    app.state.db.execute("UPDATE shares SET locked_at = '2026-01-01T00:00:00+00:00' WHERE id = ?", [share_id])
    assert retention.purge_all(app.state)["shares"] == 1
    assert_no_trace(app, wrapped)


def test_terminating_a_tus_upload(app, staff_client):
    url = create(staff_client, "half.csv", len(CSV)).headers["location"]
    assert patch(staff_client, url, 0, CSV[:5]).status_code == 204
    wrapped = keys(app, app.state.db.scalar("SELECT file_id FROM uploads"))
    assert staff_client.delete(url, headers=tus_headers(staff_client)).status_code == 204
    assert_no_trace(app, wrapped)


def test_an_upload_past_its_expiry(app, staff_client, frozen):
    url = create(staff_client, "late.csv", len(CSV)).headers["location"]
    assert patch(staff_client, url, 0, CSV[:5]).status_code == 204
    wrapped = keys(app, app.state.db.scalar("SELECT file_id FROM uploads"))
    frozen.advance(hours=files.UPLOAD_HOURS + 1)
    assert retention.purge_all(app.state)["uploads"] == 1
    assert_no_trace(app, wrapped)


def test_a_refused_form_upload(app, staff_client, monkeypatch):
    seen = []
    discard = files.discard

    def spy(database, files_dir, file_id, *args, **kwargs):
        key = app.state.db.scalar("SELECT wrapped_key FROM files WHERE id = ?", [file_id])
        if key is not None:  # the view discards again what the core already discarded
            seen.append(key)
        return discard(database, files_dir, file_id, *args, **kwargs)

    monkeypatch.setattr(files, "discard", spy)
    response = form_upload(staff_client, ("run.csv", b"MZ\x90\x00rest", "text/csv"))
    assert response.status_code == 400 and "does not match" in response.text
    assert len(seen) == 1
    assert_no_trace(app, seen)
