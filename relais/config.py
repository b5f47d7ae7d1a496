"""Configuration: one frozen dataclass built from ``RELAIS_*`` environment variables.

Every setting has a safe default so that ``make run`` works on a fresh machine; production
overrides them in the environment (see the README's table, which mirrors ``FIELDS`` below).
Settings that an admin changes at run time (expiries, session timeouts, terms) live in the
database instead, in :mod:`relais.settings`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = 8000
    # The public URL put in e-mails and links. Never derived from the request's Host header,
    # which an attacker controls (password-reset poisoning).
    base_url: str = "http://127.0.0.1:8000"
    # Outside data/ in production so that a copy of the data folder reveals nothing.
    master_key_file: Path | None = None
    # The day keys that wrap file keys (relais/storage/epochs.py): outside the data folder and out
    # of every backup, so that a deleted file's key in a backup dies with its day's key.
    epoch_keys_dir: Path | None = None
    # Proxies whose X-Forwarded-For we believe (Caddy on the same host by default).
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_tls: str = "starttls"  # starttls | tls | none
    # A private CA for the SMTP server's certificate (an internal relay); empty: the system's.
    smtp_ca_file: str = ""
    mail_from: str = "Relais <relais@localhost>"
    # Cookies are always Secure; the __Host- prefix requires it. Browsers accept Secure
    # cookies from http://127.0.0.1 and http://localhost, so development works unchanged.
    cookie_secure: bool = True
    # argon2id cost. Tests lower it for speed; production keeps the library's RFC 9106 profile.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    admin_email: str = "admin@localhost"
    # On SIGTERM, how long requests in flight may go on before they are cancelled (tus uploads that
    # are sending stop at once, keeping what arrived). Without a limit a stalled upload would keep
    # the server from stopping; a cancelled one resumes from its last checkpoint, a cancelled
    # download with a Range request.
    stop_grace_seconds: float = 10.0
    # The registry's time zone: every time on a page or in an e-mail is shown in it, with its name
    # (stored times stay UTC). An IANA name; an unknown one stops the start (relais.times).
    timezone: str = "Europe/Brussels"
    # How to reach the registry, shown to a partner whose access has ended beside their contact
    # person (an address, a phone number); empty: the contact person only.
    registry_contact: str = ""
    # The outbox sender and retention threads; tests that drive them themselves turn them off.
    background_jobs: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "relais.db"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def resolved_master_key_file(self) -> Path:
        return self.master_key_file or (self.data_dir / "master.key")

    @property
    def resolved_epoch_keys_dir(self) -> Path:
        """Beside the master key unless set: wherever the master key is kept, its day keys are too."""
        key = self.resolved_master_key_file
        return self.epoch_keys_dir or key.with_name(key.name + ".epochs")

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)


# name -> (environment variable, parser); the README documents each of these, and each is read
# somewhere (tests/test_settings_documented.py): a variable nothing reads is not listed until it is.
def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _proxies(value: str) -> tuple[str, ...]:
    items = tuple(p.strip() for p in value.split(",") if p.strip())
    for item in items:
        ipaddress.ip_network(item, strict=False)  # fail early on a typo
    return items


def _timezone(value: str) -> str:
    from relais import times

    times.zone(value.strip())  # fail at start, with a clear message, on a typo
    return value.strip()


FIELDS = {
    "data_dir": ("RELAIS_DATA_DIR", Path),
    "host": ("RELAIS_HOST", str),
    "port": ("RELAIS_PORT", int),
    "base_url": ("RELAIS_BASE_URL", lambda v: v.rstrip("/")),
    "master_key_file": ("RELAIS_MASTER_KEY_FILE", Path),
    "epoch_keys_dir": ("RELAIS_EPOCH_KEYS_DIR", Path),
    "trusted_proxies": ("RELAIS_TRUSTED_PROXIES", _proxies),
    "smtp_host": ("RELAIS_SMTP_HOST", str),
    "smtp_port": ("RELAIS_SMTP_PORT", int),
    "smtp_user": ("RELAIS_SMTP_USER", str),
    "smtp_password": ("RELAIS_SMTP_PASSWORD", str),
    "smtp_tls": ("RELAIS_SMTP_TLS", str),
    "smtp_ca_file": ("RELAIS_SMTP_CA_FILE", str),
    "mail_from": ("RELAIS_MAIL_FROM", str),
    "cookie_secure": ("RELAIS_COOKIE_SECURE", _bool),
    "admin_email": ("RELAIS_ADMIN_EMAIL", str),
    "stop_grace_seconds": ("RELAIS_STOP_GRACE_SECONDS", float),
    "timezone": ("RELAIS_TIMEZONE", _timezone),
    "registry_contact": ("RELAIS_REGISTRY_CONTACT", str),
}


def from_env(environ: dict[str, str] | None = None, **overrides) -> Config:
    """Build the configuration from ``RELAIS_*`` variables; ``overrides`` win (for tests)."""
    environ = os.environ if environ is None else environ
    values = {}
    for name, (var, parse) in FIELDS.items():
        if environ.get(var, "") != "":
            values[name] = parse(environ[var])
    if "base_url" not in values:
        host = values.get("host", Config.host)
        port = values.get("port", Config.port)
        values["base_url"] = f"http://{host}:{port}"
    values.update(overrides)
    return Config(**values)
