"""Loading the one settings source: embedded defaults, a TOML file, environment.

Layers, later wins:

1. the embedded defaults, ``src/hux/defaults/*.toml`` (each file holds whole
   top-level sections; files are merged);
2. the operator's file: ``--config PATH``, else ``$HUX_CONFIG``, else
   ``./hux.toml`` when it exists;
3. environment overrides ``HUX__SECTION__KEY=value`` (double underscores
   separate the path; the value is read as a TOML value when it parses as one,
   else as a string), after loading ``./.env`` (or ``$HUX_ENV_FILE``) without
   overriding variables already set.

Secrets never live in these files: sections name an environment variable or a
``*_file`` path, and the section's own model reads it. This module only merges
and reports errors; each section validates itself with pydantic, and
``validation_error`` turns pydantic's report into one message that names the
key, says what is wrong and how to fix it.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping, MutableMapping

DEFAULTS_DIR = Path(__file__).parent / "defaults"
ENV_PREFIX = "HUX__"


class ConfigError(Exception):
    """A setting is missing, mistyped or out of range. The message says which and how to fix it."""


#: characters no setting may hold: every string setting ends up in a file another program parses
#: (prometheus.yml, alertmanager.yml, grafana.ini, docker-compose.yml), one value per line.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_name(value: str) -> str:
    """A setting that names an environment variable: empty or a valid name (ValueError otherwise)."""
    if value and not _ENV_NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not an environment variable name (letters, digits, _), "
                         "e.g. \"HUX_SMTP_PASSWORD\"")
    return value


def single_line(value: Any) -> Any:
    """``value`` unchanged, or ValueError when a string in it (lists and tables too) holds a control character."""
    if isinstance(value, str):
        found = _CONTROL_RE.search(value)
        if found:
            raise ValueError(f"contains the control character {found.group()!r} (a newline, tab or similar), which "
                             "the rendered config files cannot carry: remove it")
    elif isinstance(value, (list, tuple)):
        for item in value:
            single_line(item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            single_line(key)
            single_line(item)
    return value


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, tables merged key by key (neither argument is changed)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist: create it or drop --config/HUX_CONFIG") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}): fix the syntax and retry") from None


def load_dotenv(path: Path | None = None, environ: MutableMapping[str, str] | None = None) -> None:
    """Read KEY=VALUE lines from ``.env`` into the environment, never overriding."""
    environ = os.environ if environ is None else environ
    path = path or Path(environ.get("HUX_ENV_FILE", ".env"))
    if not path.is_file():
        return
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        environ.setdefault(key, value)


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``HUX__BOT__PORT=8001`` -> ``{"bot": {"port": 8001}}``."""
    out: dict[str, Any] = {}
    owner: dict[tuple[str, ...], str] = {}   # path -> the variable that set it (for conflict messages)
    for key, value in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in key[len(ENV_PREFIX):].split("__") if p]
        if not path:
            continue
        node = out
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment overrides {owner[tuple(path[:depth + 1])]} and {key} conflict: "
                                  f"the first sets a value where the second needs a table; unset one of them")
            node = child
        if isinstance(node.get(path[-1]), dict):
            other = next(v for p, v in owner.items() if p[:len(path)] == tuple(path))
            raise ConfigError(f"environment overrides {key} and {other} conflict: the first sets a value where "
                              "the second needs a table; unset one of them")
        node[path[-1]] = _parse_env_value(value)
        owner[tuple(path)] = key
    return out


def config_path(explicit: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Path | None:
    environ = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if environ.get("HUX_CONFIG"):
        return Path(environ["HUX_CONFIG"])
    local = Path("hux.toml")
    return local if local.is_file() else None


def load_raw(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    defaults: Iterable[Path] | None = None,
    use_dotenv: bool = True,
) -> dict[str, Any]:
    """Merge defaults, the operator's file and environment overrides into one dict."""
    if environ is None:
        if use_dotenv:
            load_dotenv()
        environ = os.environ
    merged: dict[str, Any] = {}
    for default in sorted(defaults if defaults is not None else DEFAULTS_DIR.glob("*.toml")):
        merged = deep_merge(merged, _read_toml(default))
    chosen = config_path(path, environ)
    if chosen is not None:
        merged = deep_merge(merged, _read_toml(chosen))
    return deep_merge(merged, env_overrides(environ))


_TYPE_HINTS = {
    "int_parsing": "a whole number, e.g. 100",
    "int_type": "a whole number, e.g. 100",
    "float_parsing": "a number, e.g. 0.5",
    "float_type": "a number, e.g. 0.5",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": 'a quoted string, e.g. "value"',
    "list_type": 'a list, e.g. ["a", "b"]',
    "dict_type": "a table (a [section] or { key = value })",
    "extra_forbidden": "nothing: this key is not known. Check its spelling against the README's configuration table, or remove it",
    "missing": "a value: this key is required",
}


def validation_error(exc: Any, section: str = "", source: str = "") -> ConfigError:
    """Turn a pydantic ``ValidationError`` into a ConfigError naming every bad key."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in ((section,) if section else ()) + tuple(err.get("loc", ())))
        kind = err.get("type", "")
        expected = _TYPE_HINTS.get(kind)
        got = err.get("input")
        if kind == "extra_forbidden":
            lines.append(f"unknown config key '{loc}': {expected}")
        elif expected:
            lines.append(f"config key '{loc}' must be {expected} (got {got!r})")
        else:
            lines.append(f"config key '{loc}': {err.get('msg')} (got {got!r}); fix the value and retry")
    where = f" in {source}" if source else ""
    return ConfigError(f"invalid configuration{where}:\n  " + "\n  ".join(lines))


def read_secret(value: str | None = None, *, env: str | None = None, file: str | None = None) -> str | None:
    """A secret from a literal (discouraged), an environment variable, or a file (first line)."""
    if env and os.environ.get(env):
        return os.environ[env]
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ConfigError(f"cannot read secret file {file}: {exc.strerror}; create it or fix the path") from None
    return value or None
