"""Login flood benchmark: a download, a tus upload and /healthz with and without a flood of logins
(and a long list paged through), against a real server on loopback.

    .venv/bin/python bench/flood.py                 # 3 rounds of each, 256 MiB download, 128 MiB upload
    .venv/bin/python bench/flood.py --rounds 5 --download-mib 512 --upload-mib 256

Prints each round's figures, then the medians and the ratios flood / idle (what
``tests/test_event_loop.py`` checks, with generous bounds, in one round). The scenario is in
``tests/flood.py``. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import flood  # noqa: E402
from tests.serving import Server  # noqa: E402

FIGURES = ["healthz_ms", "healthz_max_ms", "download_MBps", "upload_MBps", "login_s", "bogus_logins", "list_pages"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--download-mib", type=int, default=256)
    parser.add_argument("--upload-mib", type=int, default=128)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="relais-flood-"))
    (work / "data").mkdir()
    server = Server(work / "data")
    flood.prepare(server)
    server.start()
    results = {False: [], True: []}
    try:
        staff, lister, download_id = flood.setup(server, args.download_mib)
        data = flood.GZIP + os.urandom(args.upload_mib * flood.MIB)
        print(f"{flood.FLOOD} logins at once, {flood.LISTED} files listed; {args.download_mib} MiB download, "
              f"{args.upload_mib} MiB upload; server log in {work}/server.log", flush=True)
        for n in range(args.rounds):
            for busy in (False, True):
                figures = flood.one_round(server, staff, lister, download_id, data, flood=busy, real_login=True)
                results[busy].append(figures)
                print(f"round {n + 1} {'flood' if busy else 'idle ':<5} " + "  ".join(
                    f"{name} {_show(figures[name])}" for name in FIGURES), flush=True)
    finally:
        server.stop()
    medians = {busy: {name: statistics.median(r[name] for r in rounds) for name in FIGURES}
               for busy, rounds in results.items()}
    print(f"\nmedians of {args.rounds} rounds")
    for name in FIGURES:
        idle, busy = medians[False][name], medians[True][name]
        ratio = f"{busy / idle:6.2f} x idle" if idle else ""
        print(f"  {name:<15} idle {_show(idle):>9}   flood {_show(busy):>9}   {ratio}")
    return 0


def _show(value: float) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
