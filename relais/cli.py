"""``python app.py COMMAND``: serve, create-admin, reset-two-factor, purge, verify, seal-audit, backup, restore."""

from __future__ import annotations

import argparse
import logging
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
    commands.add_parser("purge", help="delete what has expired (sessions, links, files) and the day keys no file needs")
    commands.add_parser("verify", help="check the audit chain, and the database against the disk and the keys")
    commands.add_parser("seal-audit", help="no longer needed: the first start seals an upgrade's old audit rows;"
                                           " refused once the chain is marked keyed")
    backup = commands.add_parser("backup", help="copy the database (a consistent snapshot) and the files into a new"
                                                " folder; never the master key or the day keys")
    backup.add_argument("dest", type=Path)
    restore = commands.add_parser("restore", help="make an instance from a backup, into an empty data folder")
    restore.add_argument("src", type=Path)
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
    if args.command == "restore":  # before create_app, which would make a database in the folder
        return restore(config, args.src, create_app)
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
    """The audit chain, then the database against the disk and the keys; one line per problem,
    exit 1 on any."""
    checked, problem = audit.verify(state.db, state.audit_key, state.audit_marker)
    if problem:
        print(f"audit chain BROKEN after {checked} good rows: {problem}")
    else:
        print(f"audit chain ok: {checked} rows")
    from relais import files, key_epochs

    problems = files.check_disk(state.db, state.config.files_dir)
    for line in problems:
        print(f"files: {line}")
    if not problems:
        print("files ok: every stored file is on disk with its size, and no data file is unaccounted for")
    key_problems = key_epochs.check(state.db, state.file_keys)
    for line in key_problems:
        print(f"keys: {line}")
    if not key_problems:
        print(f"keys ok: every file's key unwraps with its day's key ({state.config.resolved_epoch_keys_dir}),"
              " and no day key is kept past its time")
    return 1 if problem or problems or key_problems else 0


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
    from relais import backup as backups, key_epochs, settings

    try:
        copied = backups.backup(state, dest)
    except backups.Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    for name in copied.left_out:
        print(f"left out: data file {name}, deleted while the backup was being made")
    days = key_epochs.guarantee_days(state.db.read_sync(settings.all_values))
    config = state.config
    print(f"backup written to {dest}: the database and {copied.files} data files.\n"
          f"Not in it, and never: the master key ({config.resolved_master_key_file}) and the day keys"
          f" ({config.resolved_epoch_keys_dir}).\nKeep them apart from this copy: without them it opens nothing."
          f" A file deleted from now on can no longer be decrypted from it after {days} days at most.")
    return 0


def restore(config, src: Path, create_app) -> int:
    """A backup into an empty data folder, with the keys as they are now."""
    from relais import backup as backups

    try:
        restored = backups.restore(config, src, create_app)
    except backups.Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    why = {"key_gone": "its day's key was destroyed (deleted since the backup)",
           "data_missing": "its data was deleted while the backup was being made",
           "unfinished": "an unfinished upload (uploads are not backed up: its client starts it again)"}
    for row, reason in restored.left_out:
        print(f"left out: file {row['id']} ({row['name']}): {why[reason]}")
    print(f"restored {src} into {config.data_dir}: {restored.files} files. Check it with `python app.py verify`,"
          " then serve it.")
    return 0
