"""Transfer benchmark: Relais uploads (tus, form) and downloads next to baselines measured in the same run.

    .venv/bin/python bench/transfer.py                  # 1 GiB and 4 GiB, loopback and through Caddy
    .venv/bin/python bench/transfer.py --sizes 0.25     # a quick run
    .venv/bin/python bench/transfer.py --no-copyparty   # without the PyPI peer
    .venv/bin/python bench/transfer.py --sizes 1 --only tus,bare --repeat 3   # some rows, each 3 times

Clients are curl (streams files from disk, never a bottleneck here), and Chromium for the browser
rows (``bench/browser.py``: Relais's uploader page against one XHR PUT of the same file to the
bare app; skipped without Playwright and Debian's Chromium). For each transfer it prints
MB/s and, for Relais, the server's peak resident memory, sampled every 20 ms. Baselines: a bare
ASGI app that writes the body to disk (uvicorn with httptools, as Relais), Caddy's own
``file_server`` for downloads, and copyparty (installed from PyPI into a throw-away venv; its
``curl -T`` upload also hashes). Two paths: straight to the server on loopback, and through Caddy
with TLS (``tls internal``) as in production. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import browser
from servers import EMAIL, PASSWORD, PYTHON, ROOT, Relais, caddy, copyparty, curl, free_port, start, wait_for

GIB = 1024**3


# -- helpers ---------------------------------------------------------------------------------------

class PeakMemory:
    """Samples a process's resident memory (VmRSS) in a thread; ``peak`` in MB."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                text = Path(f"/proc/{self.pid}/status").read_text()
                self.peak = max(self.peak, int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) // 1024)
            except (OSError, AttributeError):
                pass
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed(fn, size: int, pid: int | None = None) -> tuple[float, int | None]:
    # Data the previous transfer left for the kernel to write (the baselines never fsync) goes
    # to disk first: its writeback would otherwise take CPU and disk from this transfer.
    os.sync()
    memory = PeakMemory(pid) if pid else None
    if memory:
        memory.__enter__()
    start = time.perf_counter()
    try:
        fn()
    finally:
        if memory:
            memory.__exit__()
    return size / (time.perf_counter() - start) / 1e6, memory.peak if memory else None


def make_file(path: Path, size: int) -> None:
    """gzip magic (Relais checks that a .gz starts with it) then random bytes."""
    block = os.urandom(16 * 1024 * 1024)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00")
        left = size - 4
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)


# -- the targets -----------------------------------------------------------------------------------

TUS, FORM, BARE = "Relais tus upload (one PATCH)", "Relais form upload", "bare ASGI upload (baseline)"
DOWNLOAD, FILES = "Relais download", "Caddy file_server download (baseline)"
BARE_DOWN = "bare ASGI download (baseline)"
PEER_UP, PEER_DOWN = "copyparty curl -T upload (peer)", "copyparty download (peer)"
BROWSER, BROWSER_BARE = "Relais upload in Chromium (My files)", "bare ASGI upload in Chromium (XHR)"
# (what, path, compared with (what, path), at least this ratio): the throughput targets,
# and ratios shown for information (a text in place of the ratio says what they show)
RATIOS = [
    (TUS, "caddy", (BARE, "caddy"), 0.9),
    (FORM, "caddy", (BARE, "caddy"), 0.9),
    (DOWNLOAD, "caddy", (FILES, "caddy"), 0.9),
    (DOWNLOAD, "caddy", (BARE_DOWN, "caddy"), "what Caddy's proxying costs"),
    (TUS, "loopback", (PEER_UP, "loopback"), 1.0),
    (FORM, "loopback", (PEER_UP, "loopback"), 1.0),
    (DOWNLOAD, "loopback", (PEER_DOWN, "loopback"), 1.0),
    (BROWSER, "loopback", (BROWSER_BARE, "loopback"), "the uploader next to one plain request"),
    (BROWSER, "caddy", (BROWSER_BARE, "caddy"), "the uploader next to one plain request"),
]
SINGLE_PEAK_MB, PARALLEL_PEAK_MB = 150, 300


def median(values: list[float]) -> float:
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def summary(results: list[dict]) -> str:
    """Medians of the repeated runs, each target's ratio and whether it is met."""
    lines = ["", "targets (medians of the runs above)"]
    for gib in sorted({r["GiB"] for r in results if " at once" not in r["what"]}):
        speeds: dict[tuple[str, str], list[float]] = {}
        for r in results:
            if r["GiB"] == gib:
                speeds.setdefault((r["what"], r["path"]), []).append(r["MB/s"])
        for what, path, base, ratio in RATIOS:
            if (what, path) in speeds and base in speeds:
                ours, theirs = median(speeds[(what, path)]), median(speeds[base])
                if isinstance(ratio, str):
                    verdict = "no target: " + ratio
                else:
                    verdict = f"target >= {ratio:.1f} x: " + ("met" if ours >= ratio * theirs else "MISSED")
                lines.append(f"  {gib:>5.2f} GiB {path:<9} {what:<30} {ours:>6.0f} MB/s = {ours / theirs:4.2f} x "
                             f"{base[0]} ({theirs:.0f} MB/s); {verdict}")
    peaks = [r for r in results if r["peak MB"] is not None]
    single = [r for r in peaks if " at once" not in r["what"]]
    if single:
        largest = max(r["GiB"] for r in single)
        peak = max(r["peak MB"] for r in single if r["GiB"] == largest)
        lines.append(f"  server peak memory, one {largest:.2f} GiB transfer at a time: {peak} MB; "
                     f"target < {SINGLE_PEAK_MB} MB: {'met' if peak < SINGLE_PEAK_MB else 'MISSED'}")
    for r in peaks:
        if " at once" in r["what"]:
            lines.append(f"  server peak memory, {r['what'][len('Relais '):]}: {r['peak MB']} MB; "
                         f"target < {PARALLEL_PEAK_MB} MB: {'met' if r['peak MB'] < PARALLEL_PEAK_MB else 'MISSED'}")
    return "\n".join(lines)


# -- the run ---------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4", help="file sizes in GiB, comma-separated (default 1,4)")
    parser.add_argument("--no-copyparty", action="store_true")
    parser.add_argument("--no-caddy", action="store_true")
    parser.add_argument("--parallel", type=int, default=20, help="transfers at once for the memory check")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--only", default="", help="run only these, comma-separated: tus,form,bare,download,files,copyparty,browser,parallel")
    parser.add_argument("--repeat", type=int, default=1, help="run each transfer this many times (the figures are noisy)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="relais-bench-", dir=args.dir))
    results: list[dict] = []
    processes = []

    wanted = set(filter(None, args.only.split(","))) or {"tus", "form", "bare", "download", "files", "copyparty", "browser",
                                                         "parallel"}
    chromium = None

    def row(what, path, size, mbps, peak=None):
        results.append({"what": what, "path": path, "GiB": round(size / GIB, 2), "MB/s": round(mbps), "peak MB": peak})
        print(f"{what:<38} {path:<9} {size / GIB:>5.2f} GiB {mbps:>8.0f} MB/s" + (f"   server peak {peak} MB" if peak else ""),
              flush=True)

    try:
        relais = Relais(work)
        processes.append(relais.process)
        bare_dir, files_dir = work / "bare", work / "plain"
        bare_dir.mkdir()
        files_dir.mkdir()
        bare_port = free_port()
        processes.append(start([PYTHON, "-m", "uvicorn", "--app-dir", str(ROOT / "bench"), "servers:bare_app", "--port",
                                str(bare_port), "--http", "httptools", "--loop", "uvloop", "--log-level", "warning"],
                               work / "bare.log", env={**os.environ, "BARE_DIR": str(bare_dir), "BARE_FILES": str(files_dir)}))
        wait_for(f"http://127.0.0.1:{bare_port}/")
        paths = {"loopback": {"relais": relais.url, "bare": f"http://127.0.0.1:{bare_port}"}}
        if not args.no_caddy and shutil.which("caddy"):
            process, ports = caddy(work, relais.port, bare_port, files_dir)
            processes.append(process)
            paths["caddy"] = {"relais": f"https://localhost:{ports['relais_tls']}", "bare": f"https://localhost:{ports['bare_tls']}",
                              "files": f"https://localhost:{ports['files_tls']}"}
            paths["loopback"]["files"] = f"http://127.0.0.1:{ports['files']}"
        peer = None
        if not args.no_copyparty and "copyparty" in wanted:
            process, peer = copyparty(work)
            processes.append(process)

        if "browser" in wanted:
            if browser.available():
                chromium = browser.Browser()
            else:
                print("no browser rows: Playwright or /usr/bin/chromium is missing (make .venv/.installed-dev; apt-get install chromium)")

        counter = iter(range(10**6))
        for gib in [float(s) for s in args.sizes.split(",")]:
            size = int(gib * GIB)
            source = files_dir / f"data-{gib}.gz"
            make_file(source, size)
            # Every transfer of this size once, then again: a machine that slows down or speeds up
            # during the run then weighs on Relais and on its baselines alike.
            # Each round uploads, then downloads what it uploaded (hot in the page cache, like
            # copyparty's and Caddy's files). What an upload stored is deleted before the next
            # upload: each then starts with as much free memory as copyparty's, instead of making
            # the kernel reclaim cache for it (measured: a 4 GiB form upload right after a 4 GiB
            # tus upload that was kept used 60 % more server CPU and ran at 340-380 MB/s, not 540).
            transfers, latest = [], {}
            for label, urls in paths.items():
                auth = relais.login(urls["relais"])

                def tus(urls=urls, auth=auth, label=label):
                    latest[label] = f"{next(counter)}-tus-{label}-{gib}.gz"
                    relais.tus_upload(urls["relais"], auth, source, latest[label])

                def find(urls=urls, auth=auth, label=label):
                    if "tus" in wanted:
                        latest[label] = relais.file_id(urls["relais"], auth, latest[label])

                def download(urls=urls, auth=auth, label=label):
                    curl("-o", "/dev/null", *auth, f"{urls['relais']}/files/{latest[label]}")

                def delete_all(urls=urls, auth=auth):
                    relais.delete_all(urls["relais"], auth)

                transfers += [
                    ("tus", TUS, label, tus, relais.process.pid),
                    ("step", "", label, find, None),
                    ("download", DOWNLOAD, label, download, relais.process.pid),
                    ("step", "", label, delete_all, None),
                    ("form", FORM, label, lambda urls=urls, auth=auth, label=label: relais.form_upload(
                        urls["relais"], auth, source, f"{next(counter)}-form-{label}-{gib}.gz"), relais.process.pid),
                    ("step", "", label, delete_all, None),
                    ("bare", BARE, label, lambda urls=urls: curl("-o", "/dev/null", "-T", str(source), urls["bare"] + "/up.bin"), None),
                    ("bare", BARE_DOWN, label, lambda urls=urls: curl("-o", "/dev/null", f"{urls['bare']}/files/{source.name}"), None),
                ]
                if "files" in urls:
                    transfers.append(("files", FILES, label, lambda urls=urls: curl("-o", "/dev/null", f"{urls['files']}/{source.name}"), None))
                if chromium:
                    transfers += [
                        ("step", "", label, lambda urls=urls: chromium.open(urls["relais"], (EMAIL, PASSWORD)), None),
                        ("browser", BROWSER, label, lambda urls=urls: chromium.relais_upload(urls["relais"], (EMAIL, PASSWORD), source),
                         relais.process.pid),
                        ("step", "", label, delete_all, None),
                        ("browser", BROWSER_BARE, label, lambda urls=urls: chromium.bare_upload(urls["bare"], source), None),
                    ]
            if peer:
                peer_url, shared = f"http://127.0.0.1:{peer}", work / "copyparty-share"
                transfers += [
                    ("copyparty", PEER_UP, "loopback", lambda: curl("-o", "/dev/null", "-T", str(source), peer_url + "/"), None),
                    ("copyparty", PEER_DOWN, "loopback", lambda: curl("-o", "/dev/null", f"{peer_url}/{source.name}"), None),
                    ("step", "", "loopback", lambda: [f.unlink() for f in shared.iterdir() if f.is_file()], None),
                ]
            if "download" in wanted and "tus" not in wanted:
                wanted.add("tus")  # a download needs an upload of the same round
            for _ in range(args.repeat):
                for kind, what, label, fn, pid in transfers:
                    if kind == "step":  # untimed: finding a file, deleting what was stored
                        fn()
                    elif kind in wanted:
                        row(what, label, size, *timed(fn, size, pid))
                        for f in bare_dir.iterdir():
                            f.unlink()
            source.unlink()

        if "parallel" not in wanted:
            return 0
        # Memory with many transfers at once: parallel downloads of the first size, then parallel tus uploads.
        auth = relais.login(relais.url)
        gib = float(args.sizes.split(",")[0])
        if not relais.file_id_or_none(relais.url, auth, f"tus-loopback-{gib}.gz"):
            make_file(files_dir / "parallel-src.gz", int(gib * GIB))
            relais.tus_upload(relais.url, auth, files_dir / "parallel-src.gz", f"tus-loopback-{gib}.gz")
            (files_dir / "parallel-src.gz").unlink()
        file_id = relais.file_id(relais.url, auth, f"tus-loopback-{gib}.gz")
        size = int(gib * GIB)
        with PeakMemory(relais.process.pid) as memory:
            start_time = time.perf_counter()
            procs = [subprocess.Popen(["curl", "-sS", "-o", "/dev/null", *auth, f"{relais.url}/files/{file_id}"]) for _ in range(args.parallel)]
            for p in procs:
                p.wait()
            seconds = time.perf_counter() - start_time
        row(f"Relais {args.parallel} downloads at once", "loopback", size * args.parallel, size * args.parallel / seconds / 1e6, memory.peak)
        small = files_dir / "parallel.gz"
        make_file(small, 256 * 1024 * 1024)
        with PeakMemory(relais.process.pid) as memory:
            start_time = time.perf_counter()
            threads = [threading.Thread(target=relais.tus_upload, args=(relais.url, auth, small, f"parallel-{i}.gz")) for i in range(args.parallel)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - start_time
        row(f"Relais {args.parallel} tus uploads at once", "loopback", small.stat().st_size * args.parallel,
            small.stat().st_size * args.parallel / seconds / 1e6, memory.peak)
    finally:
        if chromium:
            chromium.close()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        (work / "results.json").write_text(json.dumps(results, indent=2))
        print(summary(results))
        print(f"\nresults: {work / 'results.json'}")
        for folder in ("relais-data", "plain", "bare", "copyparty-share"):
            shutil.rmtree(work / folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
