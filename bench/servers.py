"""The servers the transfer benchmark measures: Relais, a bare ASGI app, Caddy and copyparty.

Used by ``bench/transfer.py``; the bare app is served by uvicorn as ``servers:bare_app``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
EMAIL, PASSWORD = "bench@registry.example", "violet tugboat marmalade bench"


# -- the bare baseline: what a minimal ASGI app does with a body ----------------------------------

async def bare_app(scope, receive, send):
    """PUT writes the body to BARE_DIR/<name>; GET /files/<name> sends BARE_FILES/<name> in 1 MiB
    blocks (plain reads, nothing decrypted); anything else gets 200 and nothing."""
    if scope["type"] != "http":
        return
    if scope["method"] == "PUT":
        with open(Path(os.environ["BARE_DIR"]) / Path(scope["path"]).name, "wb") as f:
            while True:
                message = await receive()
                f.write(message.get("body", b""))
                if not message.get("more_body"):
                    break
    elif scope["path"].startswith("/files/"):
        with open(Path(os.environ["BARE_FILES"]) / Path(scope["path"]).name, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(size).encode())]})
            while block := f.read(1024 * 1024):
                await send({"type": "http.response.body", "body": block, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


# -- helpers ---------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["curl", "-sk", "-o", "/dev/null", url], check=False).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def curl(*args: str) -> str:
    done = subprocess.run(["curl", "-sSk", "--fail-with-body", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args[:4])}...: {done.stderr.strip()} {done.stdout[:300]}")
    return done.stdout


# -- servers ---------------------------------------------------------------------------------------

class Relais:
    def __init__(self, work: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = work / "relais-data"
        self.env = {**os.environ, "RELAIS_DATA_DIR": str(data), "RELAIS_PORT": str(self.port),
                    "RELAIS_MASTER_KEY_FILE": str(work / "master.key"), "RELAIS_BASE_URL": self.url}
        subprocess.run([PYTHON, "app.py", "create-admin", "--email", EMAIL, "--password-stdin"], cwd=ROOT, env=self.env,
                       input=PASSWORD, text=True, check=True, capture_output=True)
        self.process = subprocess.Popen([PYTHON, "app.py", "serve"], cwd=ROOT, env=self.env,
                                        stdout=open(work / "relais.log", "w"), stderr=subprocess.STDOUT)
        wait_for(self.url + "/healthz")

    def login(self, base: str) -> list[str]:
        """curl arguments carrying a fresh session's cookies and CSRF header."""
        headers = curl("-D", "-", "-o", "/dev/null", base + "/login")
        csrf = re.search(r"__Host-csrf=([^;]+)", headers).group(1)
        headers = curl("-D", "-", "-o", "/dev/null", "-H", f"Cookie: __Host-csrf={csrf}", "--data-urlencode", f"email={EMAIL}",
                       "--data-urlencode", f"password={PASSWORD}", "--data-urlencode", f"_csrf_token={csrf}", base + "/login")
        session = re.search(r"__Host-relais_session=([^;]+)", headers).group(1)
        return ["-H", f"Cookie: __Host-csrf={csrf}; __Host-relais_session={session}", "-H", f"x-csrftoken: {csrf}"]

    def tus_upload(self, base: str, auth: list[str], path: Path, name: str) -> None:
        size = path.stat().st_size
        meta = "filename " + __import__("base64").b64encode(name.encode()).decode()
        headers = curl("-D", "-", "-o", "/dev/null", "-X", "POST", *auth, "-H", "Tus-Resumable: 1.0.0",
                       "-H", f"Upload-Length: {size}", "-H", f"Upload-Metadata: {meta}", base + "/tus/")
        location = re.search(r"(?i)location: (\S+)", headers).group(1)
        curl("-o", "/dev/null", "-X", "PATCH", "-T", str(path), *auth, "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
             "-H", "Content-Type: application/offset+octet-stream", base + location)

    def form_upload(self, base: str, auth: list[str], path: Path, name: str) -> None:
        csrf = auth[-1].removeprefix("x-csrftoken: ")
        curl("-o", "/dev/null", *auth, "-F", f"_csrf_token={csrf}", "-F", f"file=@{path};filename={name}",
             base + "/files/upload")

    def file_id(self, base: str, auth: list[str], name: str) -> str:
        page = curl(*auth, base + "/files")
        return re.search(r'href="/files/([0-9a-f]+)" download>Download<span class="visually-hidden"> ' + re.escape(name), page).group(1)

    def delete_all(self, base: str, auth: list[str]) -> None:
        """Delete every stored file: a long run must not fill the disk."""
        page = curl(*auth, base + "/files")
        for file_id in re.findall(r'href="/files/([0-9a-f]+)" download>', page):
            curl("-o", "/dev/null", *auth, "-X", "POST", f"{base}/files/{file_id}/delete")

    def file_id_or_none(self, base: str, auth: list[str], name: str) -> str | None:
        try:
            return self.file_id(base, auth, name)
        except AttributeError:
            return None

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def start(command: list[str], log: Path, env=None, cwd=None) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, cwd=cwd)


def caddy(work: Path, relais_port: int, bare_port: int, files_dir: Path) -> tuple[subprocess.Popen, dict]:
    """One Caddy: TLS in front of Relais and of the bare app, file_server plain and over TLS."""
    ports = {name: free_port() for name in ("relais_tls", "bare_tls", "files", "files_tls")}
    config = f"""{{
    auto_https disable_redirects
    admin off
    skip_install_trust
}}
https://localhost:{ports['relais_tls']} {{
    tls internal
    request_body {{
        max_size 100GB
    }}
    reverse_proxy 127.0.0.1:{relais_port} {{
        flush_interval -1
    }}
}}
https://localhost:{ports['bare_tls']} {{
    tls internal
    reverse_proxy 127.0.0.1:{bare_port} {{
        flush_interval -1
    }}
}}
http://127.0.0.1:{ports['files']} {{
    root * {files_dir}
    file_server
}}
https://localhost:{ports['files_tls']} {{
    tls internal
    root * {files_dir}
    file_server
}}
"""
    (work / "Caddyfile").write_text(config)
    env = {**os.environ, "XDG_DATA_HOME": str(work / "caddy-data"), "XDG_CONFIG_HOME": str(work / "caddy-config")}
    process = start(["caddy", "run", "--config", str(work / "Caddyfile"), "--adapter", "caddyfile"], work / "caddy.log", env)
    wait_for(f"https://localhost:{ports['relais_tls']}/healthz")
    return process, ports


def copyparty(work: Path) -> tuple[subprocess.Popen, int]:
    venv = work / "copyparty-venv"
    subprocess.run([PYTHON, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "copyparty"], check=True)
    port = free_port()
    share = work / "copyparty-share"
    share.mkdir()
    process = start([str(venv / "bin" / "copyparty"), "-i", "127.0.0.1", "-p", str(port), "-v", f"{share}::A", "-q"],
                    work / "copyparty.log")
    wait_for(f"http://127.0.0.1:{port}/")
    return process, port
