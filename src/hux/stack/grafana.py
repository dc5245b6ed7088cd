"""Native Grafana: the generated admin password and the server's ini file.

The admin password is generated on first run (never ``admin/admin``) into
``data/grafana/admin_password`` (or ``grafana.admin_password_file``), mode
0600. Grafana reads it through ``$__file{...}`` expansion in the ini we write,
so it never appears on a command line, in the environment or in a log.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

PASSWORD_BYTES = 24
#: what no value of grafana.ini may hold: line breaks end the value, ; and # start a comment,
#: $ { } start Grafana's $__file{...}/${VAR} expansion, quotes and backticks change its quoting
_INI_UNSAFE = frozenset("\r\n\x00;#${}\"'`") | frozenset(chr(c) for c in range(32)) | {"\x7f"}


def _ini_value(key: str, value: object) -> str:
    text = str(value)
    bad = sorted(_INI_UNSAFE & set(text))
    if bad:
        raise ValueError(f"grafana.ini cannot carry {key} = {text!r} (it holds {bad!r}): "
                         "use a value (or, for a path, a HUX_HOME / file location) without those characters")
    return text


def ensure_admin_password(path: Path) -> tuple[str, bool]:
    """The Grafana admin password: see ensure_secret_file."""
    return ensure_secret_file(path)


def ensure_secret_file(path: Path) -> tuple[str, bool]:
    """Return (secret, created). Generates a random one into a new 0600 file; tightens loose permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
        password = path.read_text(encoding="utf-8").strip()
        if not password or password == "admin":
            raise ValueError(
                f"{path} holds an empty or default password; delete the file (for Grafana also data/grafana/grafana.db "
                "if it already ran with it) and run `hux up` to generate a new one"
            ) from None
        return password, False
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(password + "\n")
    return password, True


def write_ini(
    path: Path,
    *,
    bind_address: str,
    port: int,
    data_dir: Path | str,
    provisioning_dir: Path | str,
    admin_user: str,
    password_file: Path | str,
) -> Path:
    """The ini Grafana starts with (``--config``); values override the install's defaults.ini.

    Every value is checked against what the ini can carry (ValueError, nothing written, otherwise):
    a newline would start a new section, ``$__file{...}`` would read another file.
    """
    data_dir = _ini_value("paths.data", data_dir)
    plugins = _ini_value("paths.plugins", Path(data_dir) / "plugins")
    provisioning_dir = _ini_value("paths.provisioning", provisioning_dir)
    bind_address = _ini_value("server.http_addr", bind_address)
    port = int(port)
    admin_user = _ini_value("security.admin_user", admin_user)
    password_file = _ini_value("security.admin_password", password_file)
    text = f"""; Written by `hux up` for the native stack; regenerated on every start.
[paths]
data = {data_dir}
plugins = {plugins}
provisioning = {provisioning_dir}

[server]
http_addr = {bind_address}
http_port = {port}
root_url = http://{bind_address}:{port}/

[security]
admin_user = {admin_user}
admin_password = $__file{{{password_file}}}
disable_gravatar = true

[users]
allow_sign_up = false

[auth.anonymous]
enabled = false

[analytics]
reporting_enabled = false
check_for_updates = false
check_for_plugin_updates = false

[log]
; stdout is captured by the supervisor into logs/grafana.log (rotated)
mode = console
"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path
