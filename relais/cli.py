"""``python app.py COMMAND``: serve, create-admin, reset-two-factor, purge, verify, seal-audit, backup."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from relais import audit, logs, passwords, two_factor, users
from relais.config import from_env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app.py", description="Relais, a secure file-exchange portal.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve the web application (RELAIS_HOST, RELAIS_PORT)")
    admin = commands.add_parser("create-admin", help="create an admin account")
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", default="")
    admin.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    reset = commands.add_parser("reset-two-factor", help="remove an account's second factor (the last admin lost"
                                                         " their phone and recovery codes)")
    reset.add_argument("--email", required=True)
    commands.add_parser("purge", help="delete what has expired (sessions, links, files)")
    commands.add_parser("verify", help="check the audit chain and that the database and the disk agree")
    commands.add_parser("seal-audit", help="no longer needed: the first start seals an upgrade's old audit rows;"
                                           " refused once the chain is marked keyed")
    backup = commands.add_parser("backup", help="copy the database (a consistent snapshot) and the files")
    backup.add_argument("dest", type=Path)
    return parser


def main(argv: list[str], create_app) -> int:
    args = _parser().parse_args(argv)
    try:
        config = from_env()
    except ValueError as exc:  # a setting that cannot be right (RELAIS_TIMEZONE=Europe/Bruxelles): say which
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve(config, create_app)
    app = create_app(config)
    state = app.state
    try:
        if args.command == "create-admin":
            return create_admin(state, args)
        if args.command == "reset-two-factor":
            return reset_two_factor(state, args.email)
        if args.command == "purge":
            from relais import retention

            purged = retention.purge_all(state)
            print("purged " + ", ".join(f"{count} {what}" for what, count in purged.items()))
            return 0
        if args.command == "verify":
            return verify(state)
        if args.command == "seal-audit":
            return seal_audit(state)
        if args.command == "backup":
            return backup(state, args.dest)
    finally:
        state.db.close()
    return 2


def serve(config, create_app) -> int:
    import uvicorn

    class _Server(uvicorn.Server):
        """uvicorn, telling the app when a stop is asked for (SIGTERM, Ctrl-C)."""

        def __init__(self, stopping, server_config):
            super().__init__(server_config)
            self._stopping = stopping

        def handle_exit(self, sig, frame) -> None:
            self._stopping.set()
            super().handle_exit(sig, frame)

    from relais import memory

    memory.tune_malloc()
    key_file = config.resolved_master_key_file
    key_existed = key_file.exists()
    app = create_app(config)
    # Before serving, nothing can be using data/tmp: what is there was left by a crash.
    from relais import retention

    retention.clear_tmp(config.tmp_dir)
    if not key_existed:
        print(f"\n  Created the master key {key_file}: it unlocks every stored file. In production keep it\n"
              f"  outside the data folder (RELAIS_MASTER_KEY_FILE) and back it up apart from the data.", flush=True)
    # Until an admin has a password, each start prints a fresh link (the previous one ends), so a
    # lost or expired one is never a dead end; afterwards none, and the printed ones stop working.
    setup = users.setup_link(app.state.db, app.state.hasher, config.admin_email)
    if setup is not None:
        admin, token = setup
        print(
            f"\n  No admin can log in yet: {admin.email} is the first.\n"
            f"  Log in once with this link (it works once, and only until an admin has a password)\n"
            f"  and choose a password:\n\n"
            f"    {config.base_url}/login/link/{token}\n",
            flush=True,
        )
    # proxy_headers off: X-Forwarded-For is honoured by Relais itself, and only from trusted proxies.
    server = _Server(app.state.stopping, uvicorn.Config(app, host=config.host, port=config.port, http="httptools", loop="uvloop",
                                           proxy_headers=False, server_header=False, log_level="info",
                                           timeout_graceful_shutdown=config.stop_grace_seconds))
    logging.getLogger("uvicorn.access").addFilter(logs.RedactTokens())  # after uvicorn configured logging
    server.run()
    return 0


def create_admin(state, args) -> int:
    password = None
    if args.password_stdin:
        password = sys.stdin.read()
        password = password[:-1] if password.endswith("\n") else password
    try:
        admin = users.create(state.db, state.hasher, audit.SYSTEM, email=args.email, name=args.name,
                             role="admin", password=password)
    except users.UserError as exc:
        print(f"error: {exc.reason.replace('_', ' ')}", file=sys.stderr)
        return 1
    except passwords.PasswordRejected as exc:
        print(f"error: password {exc.reason.replace('_', ' ')} (at least {passwords.MIN_LENGTH} characters,"
              " not a common one)", file=sys.stderr)
        return 1
    if password is None:
        token = users.issue_login_link(state.db, audit.SYSTEM, admin.id)
        print(f"created admin {admin.email}; one-time login link:\n{state.config.base_url}/login/link/{token}")
    else:
        print(f"created admin {admin.email}")
    return 0


def reset_two_factor(state, email: str) -> int:
    """What an admin does from the Accounts page, for when no admin can log in any more."""
    account = users.by_email(state.db, email)
    try:
        if account is None:
            raise two_factor.TwoFactorRefused("not_found")
        ended = two_factor.reset(state.db, audit.SYSTEM, account["id"])
    except two_factor.TwoFactorRefused as exc:
        print(f"error: {'no such account' if exc.reason == 'not_found' else 'no second factor to reset'}", file=sys.stderr)
        return 1
    print(f"second factor of {account['email']} removed ({ended} sessions ended); where one is required, they set up"
          " a new one at their next login")
    return 0


def verify(state) -> int:
    """The audit chain, then the database against the disk; exit 1 on any problem."""
    checked, problem = audit.verify(state.db, state.audit_key, state.audit_marker)
    if problem:
        print(f"audit chain BROKEN after {checked} good rows: {problem}")
    else:
        print(f"audit chain ok: {checked} rows")
    from relais import files

    problems = files.check_disk(state.db, state.config.files_dir)
    for line in problems:
        print(f"files: {line}")
    if not problems:
        print("files ok: every stored file is on disk with its size, and no data file is unaccounted for")
    return 1 if problem or problems else 0


def seal_audit(state) -> int:
    """Key the rows written before the audit chain had a key, as they are now (see relais/audit.py).
    Kept for the upgrade notes that name it: every start seals a genuine upgrade before this runs,
    so it refuses once the marker exists, and plain rows found then are forged, not old."""
    try:
        first, last = audit.seal(state.db, state.audit_key, state.audit_marker)
    except audit.AlreadyKeyed:
        print(f"refused: this audit chain is marked keyed ({state.audit_marker}); the first start of this version"
              " sealed the rows written before the key, and rows with plain hashes after those are forged:"
              " run `python app.py verify`")
        return 1
    except audit.NothingToSeal:
        print("nothing to seal: every row of the audit chain is already keyed or sealed")
        return 0
    except audit.ChainBroken as exc:
        print(f"not sealed, the audit chain is BROKEN: {exc}")
        return 1
    print(f"sealed audit rows {first} to {last}, written before the chain had a key")
    return 0


def backup(state, dest: Path) -> int:
    """A consistent copy while the server runs: SQLite's backup API, then the encrypted files."""
    # The copy holds password hashes and wrapped keys: its owner only.
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest.chmod(0o700)
    (dest / "relais.db").touch(mode=0o600)
    state.db.backup(dest / "relais.db")
    files = state.config.files_dir
    if files.exists():
        shutil.copytree(files, dest / "files", dirs_exist_ok=True)
    print(f"backup written to {dest}")
    return 0
