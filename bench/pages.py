"""Pages at a registry's volumes: every list and search page, the audit CSV export and `verify`,
against a real server over a database filled as a registry's would be after years.

    .venv/bin/python bench/pages.py                       # 1,000,000 audit rows, 20,000 shares...
    .venv/bin/python bench/pages.py --audit 100000 --rounds 3 --requests 20
    .venv/bin/python bench/pages.py --keep /tmp/relais-pages   # reuse (or keep) the filled folder

Fills (in one transaction, with executemany): 1,000,000 audit rows with a valid HMAC chain
(computed here with relais.audit's own row_hash and key, the same hashes audit.record writes;
the insert trigger fills the search index as it does for every row), 20,000 shares and 20,000
requests with their files, events and submissions (half of the requests closed after their
Transmit, every deadline a different one), 100,000 files in all (40,000 in the admin's My files,
10,000 in partner spaces, 2,000 of them in one partner's) and 2,000 partner accounts in 100
institutions. Then it starts `python app.py serve` on it, logs in as the admin (and as that
partner, for their space) and times each list and search page ``--requests`` times per round; a
page whose first request takes more than ``--give-up`` seconds is reported, not timed. The
baseline, measured in the same run, is ``/healthz`` (the server's floor for one request). Prints each round's median and p95,
then the medians of the rounds and their ratio to the baseline, the CSV export's time, size and
the server's peak RSS (VmHWM, /proc) against its RSS before, and the time of `verify`.
Targets on this machine: pages under 100 ms median and 250 ms p95, the export's peak under
150 MB, `verify` under a minute. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from relais import audit  # noqa: E402
from relais.storage import load_master_key  # noqa: E402
from tests.serving import ROOT, Server  # noqa: E402

EMAIL, PASSWORD = "bench-admin@registry.example", "violet tugboat marmalade bench"
PARTNER = "partner-00000@partner.example"  # logs in with the admin's password (bench fill)
ACTIONS = ["login.success", "login.failure", "file.upload", "file.download", "share.create", "share.access",
           "share.download", "mail.queued", "mail.sent", "request.create", "request.transmit", "upload.start"]


def _at(i: int, total: int) -> str:
    """Row i of total spread over two years, in order (ISO UTC with microseconds, as clock writes)."""
    seconds = int(i * (2 * 365 * 86400) / max(total, 1))
    day, rest = divmod(seconds, 86400)
    from datetime import datetime, timedelta, timezone

    moment = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(days=day, seconds=rest, microseconds=i % 1_000_000)
    return moment.isoformat(timespec="microseconds")


LATER = "2099-01-01T00:00:00.000000+00:00"


def _later(minutes: int) -> str:
    """A deadline ``minutes`` after 1 Jan 2099: open for good, and each a different one."""
    from datetime import datetime, timedelta, timezone

    return (datetime(2099, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes)).isoformat(timespec="microseconds")


def fill(server: Server, counts: dict) -> None:
    db_path = Path(server.env["RELAIS_DATA_DIR"]) / "relais.db"
    key = audit.derive_key(load_master_key(Path(server.env["RELAIS_MASTER_KEY_FILE"]), create=False))
    conn = sqlite3.connect(db_path)
    started = time.monotonic()
    conn.execute("BEGIN")
    admin = conn.execute("SELECT id FROM users WHERE email = ?", [EMAIL]).fetchone()[0]
    now = "2026-11-01T00:00:00.000000+00:00"
    conn.executemany("INSERT INTO users (email, name, role, created_at) VALUES (?, ?, ?, ?)",
                     [(f"staff-{i:04}@registry.example", f"Staff {i}", "staff", now) for i in range(100)]
                     + [(f"partner-{i:05}@partner.example", f"Partner {i}", "partner", now) for i in range(counts["partners"])])
    staff = [r[0] for r in conn.execute("SELECT id FROM users WHERE role = 'staff'")]
    partner_ids = [r[0] for r in conn.execute("SELECT id FROM users WHERE role = 'partner' ORDER BY email")]
    conn.executemany("INSERT INTO institutions (name, name_key, created_at) VALUES (?, ?, ?)",
                     [(f"Hospital {i:03}", f"hospital {i:03}", now) for i in range(100)])
    institutions = [r[0] for r in conn.execute("SELECT id FROM institutions ORDER BY name_key")]
    conn.executemany(
        "INSERT INTO partners (user_id, institution_id, function, phone, contact_id, access_until, updated_at)"
        " VALUES (?, ?, 'Data manager', '+32 2 000 00 00', ?, ?, ?)",
        [(pid, institutions[i % len(institutions)], staff[i % len(staff)], LATER, now) for i, pid in enumerate(partner_ids)])
    # The first partner logs in with the admin's password (a copy of its hash), for their space.
    conn.execute("UPDATE users SET password_hash = (SELECT password_hash FROM users WHERE id = ?), password_changed_at = ?"
                 " WHERE id = ?", [admin, now, partner_ids[0]])

    def file_rows(n, owner_of):
        rows = []
        for i in range(n):
            at = _at(i, n)
            rows.append((secrets.token_hex(16), owner_of(i), f"report-{i:06}.csv", 1000 + i, "0" * 64, "text/csv", b"\0" * 60,
                         secrets.token_hex(16), "complete", at, at))
        return rows

    insert_file = ("INSERT INTO files (id, owner_id, name, size, sha256, media_type, wrapped_key, storage_name, state,"
                   " created_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    n_shares, n_requests = counts["shares"], counts["requests"]
    mine = file_rows(counts["my_files"], lambda i: admin)
    shared = file_rows(n_shares, lambda i: admin)
    requested = file_rows(n_requests, lambda i: admin)
    # A tenth of the files in partner spaces, a fifth of those in the first partner's.
    n_space = counts["files"] // 10
    in_space = file_rows(n_space, lambda i: partner_ids[0] if i % 5 == 0 else partner_ids[i % len(partner_ids)])
    others = file_rows(counts["files"] - len(mine) - len(shared) - len(requested) - n_space, lambda i: staff[i % len(staff)])
    for rows in (mine, shared, requested, in_space, others):
        conn.executemany(insert_file, rows)
    conn.executemany(
        "INSERT INTO space_files (file_id, partner_id, direction, placed_by, placed_at, delete_at, notified_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(f[0], f[1], "to_partner" if i % 2 else "from_partner", staff[i % len(staff)] if i % 2 else f[1], f[9],
          _later(i * 7), f[9]) for i, f in enumerate(in_space)])

    share_ids = [secrets.token_hex(16) for _ in range(n_shares)]
    conn.executemany(
        "INSERT INTO shares (id, owner_id, token_hash, password_hash, language, created_at, expires_at)"
        " VALUES (?, ?, ?, 'x', 'en', ?, ?)",
        [(sid, admin, secrets.token_hex(32), _at(i, n_shares), _later(i * 3)) for i, sid in enumerate(share_ids)])
    conn.executemany("INSERT INTO share_files (share_id, file_id) VALUES (?, ?)", [(sid, f[0]) for sid, f in zip(share_ids, shared)])
    conn.executemany("INSERT INTO share_recipients (share_id, email) VALUES (?, ?)",
                     [(sid, f"recipient-{i}@example.org") for i, sid in enumerate(share_ids)])
    conn.executemany("INSERT INTO link_events (kind, object_id, at, event, ip, user_agent) VALUES ('share', ?, ?, 'access', ?, 'x')",
                     [(sid, _at(i, n_shares), f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}") for i, sid in enumerate(share_ids)])

    request_ids = [secrets.token_hex(16) for _ in range(n_requests)]
    conn.executemany(
        "INSERT INTO requests (id, owner_id, token_hash, password_hash, recipient, language, max_file_size, max_files,"
        " several, created_at, expires_at, closed_at) VALUES (?, ?, ?, 'x', ?, 'en', 1000000, 10, ?, ?, ?, ?)",
        [(rid, admin, secrets.token_hex(32), f"sender-{i}@example.org", i % 2, _at(i, n_requests), _later(i * 5),
          None if i % 2 else _at(i, n_requests)) for i, rid in enumerate(request_ids)])
    conn.executemany(
        "INSERT INTO request_submissions (id, request_id, transmitted_at, language, files, bytes, retrieve_by)"
        " VALUES (?, ?, ?, 'en', 1, 1000, ?)",
        [(rid, rid, _at(i, n_requests), _later(i * 5 + 1)) for i, rid in enumerate(request_ids)])
    conn.executemany("INSERT INTO request_files (file_id, request_id, submission_id) VALUES (?, ?, ?)",
                     [(f[0], rid, rid) for rid, f in zip(request_ids, requested)])

    # The audit trail, chained as audit.record chains it (same fields, same canonical JSON, same key).
    last = conn.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    prev = last[0] if last else audit.GENESIS
    total, batch = counts["audit"], []
    insert = ("INSERT INTO audit_log (at, actor, action, object, ip, user_agent, detail, prev_hash, hash)"
              " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
    for i in range(total):
        action = ACTIONS[i % len(ACTIONS)]
        row = {"at": _at(i, total), "actor": f"staff-{i % 100:04}@registry.example", "action": action,
               "object": secrets.token_hex(16), "ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
               "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
               "detail": json.dumps({"name": f"report-{i:07}.csv", "size": 1000 + i}, ensure_ascii=False, sort_keys=True)}
        digest = audit.row_hash(key, prev, row)
        batch.append((*[row[f] for f in audit.FIELDS], prev, digest))
        prev = digest
        if len(batch) == 20_000:
            conn.executemany(insert, batch)
            batch = []
    conn.executemany(insert, batch)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"filled in {time.monotonic() - started:.0f} s: {db_path.stat().st_size / 2**20:.0f} MiB", flush=True)


def login(base: str, email: str = EMAIL) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=600)
    client.get("/login")
    csrf = client.cookies["__Host-csrf"] if "__Host-csrf" in client.cookies else client.cookies.get("csrf")
    response = client.post("/login", data={"email": email, "password": PASSWORD, "_csrf_token": csrf})
    if response.status_code >= 400:
        raise RuntimeError(f"login: {response.status_code} {response.text[:300]}")
    return client


def rss(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of the process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    def field(name):
        return int(re.search(rf"{name}:\s+(\d+) kB", status).group(1)) / 1024
    return field("VmRSS"), field("VmHWM")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20, help="requests per page per round")
    parser.add_argument("--audit", type=int, default=1_000_000)
    parser.add_argument("--shares", type=int, default=20_000)
    parser.add_argument("--requests-made", type=int, default=20_000)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--partners", type=int, default=2_000)
    parser.add_argument("--keep", type=Path, help="the folder to fill (or to reuse, if filled)")
    parser.add_argument("--give-up", type=float, default=5.0, help="seconds: a page slower than this once is not timed")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="relais-pages-"))
    (work / "data").mkdir(parents=True, exist_ok=True)
    server = Server(work / "data")
    # The base URL is plain http: cookies must not be Secure-only for this client.
    server.env["RELAIS_BASE_URL"] = server.url
    server.env["RELAIS_COOKIE_SECURE"] = "false"
    if not (work / "data" / "relais.db").exists() or not (work / "filled").exists():
        server.command("create-admin", "--email", EMAIL, "--password-stdin", stdin=PASSWORD)
        fill(server, {"audit": args.audit, "shares": args.shares, "requests": args.requests_made, "files": args.files,
                      "my_files": min(40_000, args.files // 2), "partners": args.partners})
        (work / "filled").write_text("yes\n")
    server.start()
    try:
        client = login(server.url)
        partner = login(server.url, PARTNER)
        some_object = client.get("/admin/audit").text
        found = re.search(r'<code class="audit-sub">([0-9a-f]{32})</code>', some_object)
        obj = found.group(1) if found else "none"
        # Ids to open, from the database (a list page that is slow must not hold up the others).
        conn = sqlite3.connect(Path(server.env["RELAIS_DATA_DIR"]) / "relais.db")
        first_of = {table: str(conn.execute(f"SELECT {column} FROM {table} ORDER BY created_at DESC LIMIT 1").fetchone()[0])
                    for table, column in (("shares", "id"), ("requests", "id"))}
        first_of["partner"] = str(conn.execute("SELECT id FROM users WHERE email = ?", [PARTNER]).fetchone()[0])
        first_of["institution"] = str(conn.execute("SELECT institution_id FROM partners WHERE user_id = ?",
                                                   [first_of["partner"]]).fetchone()[0])
        conn.close()
        pages = {
            "baseline /healthz": "/healthz",
            "home": "/",
            "My files": "/files",
            "My files page 400": "/files?page=400",
            "send form's files": "/shares/new/files",
            "shares": "/shares",
            "shares page 200": "/shares?page=200",
            "a share": f"/shares/{first_of['shares']}",
            "requests": "/requests",
            "requests page 200": "/requests?page=200",
            "a request": f"/requests/{first_of['requests']}",
            "partners": "/partners",
            "a partner (2,000 files)": f"/partners/{first_of['partner']}",
            "a partner's space": "/space",
            "the institution of that partner": f"/partners/institutions/{first_of['institution']}",
            "accounts": "/admin/users",
            "accounts page 40": "/admin/users?page=40",
            "open links": "/admin/open",
            "open links: shares": "/admin/open?kind=share",
            "open links: requests": "/admin/open?kind=request",
            "open links: person": "/admin/open?person=staff-0042",
            "open links: owner of all": "/admin/open?person=bench-admin",
            "open links: 7 days": "/admin/open?within=7",
            "open links later page": None,
            "audit": "/admin/audit",
            "audit action": "/admin/audit?action=share.download",
            "audit person": "/admin/audit?person=staff-0042",
            "audit object": f"/admin/audit?object={obj}",
            "audit dates": "/admin/audit?from=2025-06-01&to=2025-06-30",
            "audit words": "/admin/audit?q=report-00123",
            "audit label (nl)": "/admin/audit?q=Aangemeld&lang=nl",
            "audit all filters": "/admin/audit?person=staff-0010&action=file.upload&from=2025-01-01&to=2026-12-31&q=report",
            "audit finds nothing": "/admin/audit?q=nothing-matches-this",
            "audit older page": None,
        }
        first = client.get("/admin/audit?q=report").text
        older = re.findall(r'href="(/admin/audit\?[^"]*older=\d+)"', first)
        pages["audit older page"] = older[0].replace("&amp;", "&") if older else "/admin/audit"
        later = "/admin/open"
        for _ in range(20):  # 20 pages on
            found = re.search(r'href="(/admin/open\?[^"]*after=[^"]+)" rel="next"', client.get(later).text)
            if not found:
                break
            later = found.group(1).replace("&amp;", "&")
        pages["open links later page"] = later
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in pages}
        too_slow: dict[str, float] = {}
        for n in range(args.rounds):
            for name, path in pages.items():
                if name in too_slow:
                    continue
                who = partner if path.startswith("/space") else client
                headers = {"accept-language": "nl"} if path.endswith("&lang=nl") else {}
                t = time.perf_counter()
                status = who.get(path, headers=headers).status_code  # once to warm, not timed
                if status == 404:
                    continue
                if time.perf_counter() - t > args.give_up:
                    too_slow[name] = time.perf_counter() - t
                    print(f"round {n + 1}  {name:<26} {too_slow[name]:.1f} s once: not timed", flush=True)
                    continue
                took = []
                for _ in range(args.requests):
                    t = time.perf_counter()
                    response = who.get(path, headers=headers)
                    took.append((time.perf_counter() - t) * 1000)
                    if response.status_code != 200:
                        raise RuntimeError(f"{path}: {response.status_code}")
                took.sort()
                median, p95 = statistics.median(took), took[max(0, int(len(took) * 0.95) - 1)]
                results[name].append((median, p95))
                print(f"round {n + 1}  {name:<26} median {median:7.1f} ms  p95 {p95:7.1f} ms"
                      f"  (server RSS {rss(server.process.pid)[0]:.0f} MB)", flush=True)
        base = statistics.median(m for m, _ in results["baseline /healthz"])
        print(f"\nmedians of {args.rounds} rounds of {args.requests} requests (ratio: median / baseline)")
        for name, rounds in results.items():
            if name in too_slow:
                print(f"  {name:<26} {too_slow[name]:.1f} s for one request: not timed  SLOW")
                continue
            if not rounds:
                print(f"  {name:<26} (absent on this version)")
                continue
            median, p95 = statistics.median(m for m, _ in rounds), statistics.median(p for _, p in rounds)
            verdict = "ok" if median < 100 and p95 < 250 else "SLOW"
            print(f"  {name:<26} median {median:7.1f} ms  p95 {p95:7.1f} ms  {median / base:6.1f} x baseline  {verdict}")

        before, before_peak = rss(server.process.pid)
        exports, peak = [], before
        for _ in range(args.rounds):
            t = time.perf_counter()
            size = rows = 0
            with client.stream("GET", "/admin/audit.csv") as response:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    rows += chunk.count(b"\n")
                    peak = max(peak, rss(server.process.pid)[0])  # sampled while it streams
            exports.append(time.perf_counter() - t)
        _, lifetime_peak = rss(server.process.pid)
        print(f"\nCSV export of the whole trail: median {statistics.median(exports):.1f} s of {args.rounds},"
              f" {size / 2**20:.0f} MiB, {rows - 1} rows; server RSS before {before:.0f} MB, peak while streaming"
              f" {peak:.0f} MB ({'ok' if peak < 150 else 'OVER 150 MB'}); the server's peak since it started (VmHWM)"
              f" {before_peak:.0f} MB before the exports, {lifetime_peak:.0f} MB after")
    finally:
        server.stop()
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "app.py", "verify"], cwd=ROOT, env=server.env, capture_output=True, text=True)
    took = time.perf_counter() - t
    print(f"verify: {took:.1f} s, exit {done.returncode}: {done.stdout.strip()[:300]}"
          f" ({'ok' if took < 60 else 'OVER A MINUTE'})")
    print(f"data folder: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
