"""The file engine behind the production Caddyfile: tus uploads and ranged downloads through TLS."""

from __future__ import annotations

import hashlib
import io
import re

import httpx
from tusclient.client import TusClient

from tests.test_caddy import PASSWORD, behind_caddy  # noqa: F401 (the fixture)

CSV = b"id,value\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(400_000))  # ~6 MB, compressible


def test_upload_and_ranged_download_through_caddy(behind_caddy):  # noqa: F811
    url, _, _ = behind_caddy
    with httpx.Client(base_url=url, verify=False) as client:
        client.get("/login")
        csrf = client.cookies["__Host-csrf"]
        client.post("/login", data={"email": "admin@registry.example", "password": PASSWORD, "_csrf_token": csrf})
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        tus = TusClient(url + "/tus/", headers={"Cookie": cookie, "x-csrftoken": csrf})
        uploader = tus.uploader(file_stream=io.BytesIO(CSV), chunk_size=2 * 1024 * 1024, metadata={"filename": "through.csv"},
                                verify_tls_cert=False)
        uploader.upload()
        file_id = re.search(r'href="/files/([0-9a-f]+)" download', client.get("/files").text).group(1)

        whole = client.get(f"/files/{file_id}", headers={"Accept-Encoding": "gzip"})
        assert whole.status_code == 200 and hashlib.sha256(whole.content).digest() == hashlib.sha256(CSV).digest()
        part = client.get(f"/files/{file_id}", headers={"Range": "bytes=1000000-1999999", "Accept-Encoding": "gzip"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 1000000-1999999/{len(CSV)}"
        assert part.content == CSV[1000000:2000000]
