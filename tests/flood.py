"""A login flood and a long list against a real server, while a download, a tus upload and
``/healthz`` are measured: used by ``tests/test_event_loop.py`` and ``bench/flood.py``.

A round measures the same transfers and health checks with the flood running or not, so that the
figures are compared within one run (ratios), never against a time fixed in advance on a machine
whose load nobody knows. The flood is what a password-guessing botnet sends: ``FLOOD`` logins at
once, again and again, each for a made-up account from its own address (``X-Forwarded-For``: the
loopback peer is a trusted proxy), so that no lock cuts argon2 short and every attempt costs a
full verification. Meanwhile one client keeps paging through an account holding thousands of files.
The link flood is the same botnet guessing share-link passwords (``LINK_FLOOD`` posts at once to
made-up links, each from its own address): it needs no account at all.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import statistics
import threading
import time

import requests

from tests.serving import Server

MIB = 1024 * 1024
GZIP = b"\x1f\x8b\x08\x00"  # the content must match the .gz name
FLOOD = 40  # logins at once
LINK_FLOOD = 60  # link passwords at once (what stalled every page before the unlock was async)
LISTED = 5000  # files of the account whose list is paged through
WARM_UP = 1.0  # seconds the flood runs before the measurements start
LIST_PAUSE = 0.2  # between two pages of the long list: a person paging fast, not a second flood
EMAIL, LISTER, PASSWORD = "transfer@registry.example", "lister@registry.example", "violet tugboat marmalade"


class Session:
    """One logged-in account's cookies and CSRF header (set by hand: the cookies are Secure,
    and a cookie jar would not send them over plain http)."""

    def __init__(self, server: Server, email: str, password: str = PASSWORD):
        self.url = server.url
        csrf = requests.get(self.url + "/login", timeout=30).cookies["__Host-csrf"]
        response = requests.post(self.url + "/login", data={"email": email, "password": password, "_csrf_token": csrf},
                                 headers={"Cookie": f"__Host-csrf={csrf}"}, allow_redirects=False, timeout=120)
        assert response.status_code == 303, response.status_code
        self.csrf = csrf
        self.headers = {"Cookie": f"__Host-csrf={csrf}; __Host-relais_session={response.cookies['__Host-relais_session']}",
                        "x-csrftoken": csrf}


def prepare(server: Server) -> None:
    """Two accounts, and thousands of listed files for the second (rows only: a list never opens them)."""
    server.command("create-admin", "--email", EMAIL, "--password-stdin", stdin=PASSWORD)
    server.command("create-admin", "--email", LISTER, "--password-stdin", stdin=PASSWORD)
    server.add_listed_files(LISTER, [f"listed-{i:05}.csv" for i in range(LISTED)], size=1000)


def upload(session: Session, name: str, data: bytes) -> float:
    """A tus upload in one PATCH; returns MB/s."""
    metadata = f"filename {base64.b64encode(name.encode()).decode()}"
    created = requests.post(session.url + "/tus/", timeout=60, headers={
        **session.headers, "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)), "Upload-Metadata": metadata})
    assert created.status_code == 201, created.status_code
    start = time.perf_counter()
    response = requests.patch(created.headers["location"] if created.headers["location"].startswith("http")
                              else session.url + created.headers["location"], data=data, timeout=300, headers={
        **session.headers, "Tus-Resumable": "1.0.0", "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream"})
    elapsed = time.perf_counter() - start
    assert response.status_code == 204, response.status_code
    return len(data) / elapsed / 1e6


def file_id(session: Session, name: str) -> str:
    page = requests.get(session.url + "/files", headers=session.headers, timeout=60).text
    return re.search(rf'href="/files/([0-9a-f]+)" download>[^<]*<span class="visually-hidden"> {re.escape(name)}<', page).group(1)


def download(session: Session, file: str) -> float:
    """The whole file, read as it arrives; returns MB/s."""
    start, size = time.perf_counter(), 0
    with requests.get(f"{session.url}/files/{file}", headers=session.headers, stream=True, timeout=300) as response:
        assert response.status_code == 200, response.status_code
        for block in response.iter_content(MIB):
            size += len(block)
    return size / (time.perf_counter() - start) / 1e6


def delete(session: Session, file: str) -> None:
    response = requests.post(f"{session.url}/files/{file}/delete", data={"_csrf_token": session.csrf},
                             headers=session.headers, allow_redirects=False, timeout=60)
    assert response.status_code == 303, response.status_code


class Load:
    """Background clients until stopped: the health checker always; the flood and the lister if asked."""

    def __init__(self, server: Server, lister: Session | None, flood: bool, link_flood: bool = False):
        self.url, self.lister, self.stop = server.url, lister, threading.Event()
        self.health: list[tuple[float, float]] = []  # (when, seconds)
        self.logins, self.pages, self.link_guesses, self.errors = 0, 0, 0, []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._health, daemon=True)]
        if flood:
            self.threads += [threading.Thread(target=self._guess, daemon=True) for _ in range(FLOOD)]
            self.threads.append(threading.Thread(target=self._list, daemon=True))
        if link_flood:
            self.threads += [threading.Thread(target=self._guess_link, daemon=True) for _ in range(LINK_FLOOD)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def _run(self, step) -> None:
        try:
            while not self.stop.is_set():
                step()
        except Exception as exc:  # reported by the test, never lost in a thread
            self.errors.append(repr(exc))

    def _health(self) -> None:
        def step():
            start = time.perf_counter()
            response = requests.get(self.url + "/healthz", timeout=60)
            assert response.status_code == 200, response.status_code
            with self.lock:
                self.health.append((start, time.perf_counter() - start))
            time.sleep(0.02)
        self._run(step)

    def _guess(self) -> None:
        http = requests.Session()
        csrf = http.get(self.url + "/login", timeout=60).cookies["__Host-csrf"]

        def step():
            address = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
            response = http.post(self.url + "/login", timeout=300, allow_redirects=False, headers={
                "Cookie": f"__Host-csrf={csrf}", "X-Forwarded-For": address}, data={
                "email": f"guess-{secrets.token_hex(4)}@registry.example", "password": "not the password at all",
                "_csrf_token": csrf})
            assert response.status_code == 401, response.status_code
            with self.lock:
                self.logins += 1
        self._run(step)

    def _guess_link(self) -> None:
        http = requests.Session()
        csrf = http.get(self.url + "/login", timeout=60).cookies["__Host-csrf"]

        def step():
            address = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
            response = http.post(f"{self.url}/s/{secrets.token_urlsafe(32)}", timeout=300, allow_redirects=False,
                                 headers={"Cookie": f"__Host-csrf={csrf}", "X-Forwarded-For": address},
                                 data={"password": "not the password at all", "_csrf_token": csrf})
            assert response.status_code == 404, response.status_code  # no such link: the same page as a wrong one
            with self.lock:
                self.link_guesses += 1
        self._run(step)

    def _list(self) -> None:
        pages = LISTED // 50

        def step():
            response = requests.get(f"{self.url}/files?page={secrets.randbelow(pages) + 1}", headers=self.lister.headers,
                                    timeout=120)
            assert response.status_code == 200 and "listed-" in response.text, response.status_code
            with self.lock:
                self.pages += 1
            time.sleep(LIST_PAUSE)
        self._run(step)

    def health_between(self, start: float, end: float) -> list[float]:
        with self.lock:
            return [seconds for at, seconds in self.health if start <= at <= end]


def page_seconds(session: Session, path: str = "/files", times: int = 5) -> list[float]:
    """How long a logged-in page takes, ``times`` times in a row."""
    seconds = []
    for _ in range(times):
        start = time.perf_counter()
        response = requests.get(session.url + path, headers=session.headers, allow_redirects=False, timeout=300)
        assert response.status_code == 200, response.status_code
        seconds.append(time.perf_counter() - start)
    return seconds


def one_round(server: Server, staff: Session, lister: Session, download_id: str, upload_data: bytes,
              flood: bool, real_login: bool = False, tries: int = 2) -> dict:
    """Download and upload ``tries`` times, with or without the flood; the figures of that round.

    A transfer's speed is the best of its tries: the machine is shared, and a burst of someone
    else's work should not pass for the flood's doing. ``real_login`` also times one login with
    the right password, queued behind the flood's.
    """
    names = []
    with Load(server, lister, flood) as load:
        time.sleep(WARM_UP if flood else 0.3)
        start = time.perf_counter()
        downloads, uploads = [], []
        for _ in range(tries):
            downloads.append(download(staff, download_id))
            names.append(f"up-{secrets.token_hex(4)}.csv.gz")
            uploads.append(upload(staff, names[-1], upload_data))
        end = time.perf_counter()
        health = load.health_between(start, end)
        login_seconds = None
        if real_login:
            login_started = time.perf_counter()
            Session(server, EMAIL)
            login_seconds = time.perf_counter() - login_started
    assert not load.errors, load.errors[:3]
    for name in names:
        delete(staff, file_id(staff, name))
    return {
        "healthz_ms": statistics.median(health) * 1000, "healthz_max_ms": max(health) * 1000, "healthz_n": len(health),
        "download_MBps": max(downloads), "upload_MBps": max(uploads), "login_s": login_seconds,
        "bogus_logins": load.logins, "list_pages": load.pages,
    }


def setup(server: Server, download_mib: int) -> tuple[Session, Session, str]:
    """Log the two accounts in and store the file to download."""
    staff, lister = Session(server, EMAIL), Session(server, LISTER)
    upload(staff, "download.csv.gz", GZIP + os.urandom(download_mib * MIB - len(GZIP)))
    return staff, lister, file_id(staff, "download.csv.gz")
