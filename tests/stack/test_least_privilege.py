"""Least privilege on the host: each child gets only the secrets it needs; chat texts and logs are private.

The real native stack is started with a (fake) Telegram token and SMTP password
in the supervisor's environment, over a home whose data/ and logs/ an older
install left world-readable. Afterwards /proc/<pid>/environ of Prometheus,
Alertmanager and node_exporter holds neither secret, the bot's holds its token
and no SMTP password, and data/, logs/, the bot's database and every log are
0700/0600 (the old modes tightened).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hux.stack.plan import BASE_ENV, StackPaths
from hux.stack.procs import ProcessIdentity
from tests.stack.conftest import start_stack, stop_stack, wait_for
from tests.stack.test_supervisor import component, spec, supervised  # noqa: F401 - the fixture

FAKE_TOKEN = "123456789:FAKE-token-for-the-least-privilege-test"
FAKE_SMTP = "fake-smtp-password-never-for-prometheus"


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode(errors="replace").partition("=")[::2] for item in raw.split(b"\0") if item)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def loose_home(tmp_path_factory: pytest.TempPathFactory):
    """A home as an older install left it: data/ and logs/ 0755, the database and the bot's log 0644."""
    home = tmp_path_factory.mktemp("least")
    for directory in ("data", "data/bot", "logs"):
        (home / directory).mkdir(mode=0o755)
        os.chmod(home / directory, 0o755)
    for name in ("data/bot/hux.db", "logs/mr_hux_alpha_bot.log", "logs/prometheus.log"):
        (home / name).write_bytes(b"")
        os.chmod(home / name, 0o644)
    stack = start_stack(home, config_extra="\n[bot.demo]\nenabled = true\n",
                        env_extra={"HUX_TELEGRAM_TOKEN": FAKE_TOKEN, "HUX_SMTP_PASSWORD": FAKE_SMTP})
    yield stack
    stop_stack(stack)


def test_only_the_bot_sees_the_telegram_token_and_no_child_the_smtp_password(loose_home):
    idents = loose_home.identities()
    for name in ("prometheus", "alertmanager", "node_exporter", "bot"):
        assert name in idents and idents[name].alive(), f"{name} is not running"
    supervisor = environ_of(idents["supervisor"].pid)
    assert supervisor["HUX_TELEGRAM_TOKEN"] == FAKE_TOKEN   # the test really put them there
    assert supervisor["HUX_SMTP_PASSWORD"] == FAKE_SMTP
    for name in ("prometheus", "alertmanager", "node_exporter"):
        env = environ_of(idents[name].pid)
        leaked = [k for k, v in env.items() if FAKE_TOKEN in v or FAKE_SMTP in v]
        assert not leaked, f"{name} got {leaked}"
        assert not [k for k in env if k.startswith("HUX")], f"{name} got HUX variables: {sorted(env)}"
        assert "PATH" in env
    bot = environ_of(idents["bot"].pid)
    assert bot["HUX_TELEGRAM_TOKEN"] == FAKE_TOKEN
    assert "HUX_SMTP_PASSWORD" not in bot and FAKE_SMTP not in "".join(bot.values())
    assert bot["HUX_HOME"] == str(loose_home.home) and bot["HUX_CONFIG"] == str(loose_home.config)


def test_data_logs_database_and_log_files_are_private_and_old_modes_tightened(loose_home):
    home = loose_home.home
    wait_for(lambda: (home / "logs" / "mr_hux_alpha_bot.log").stat().st_size > 0, 30, "the bot to log")
    for directory in ("data", "logs", "data/bot", "data/prometheus", "data/alertmanager", "data/supervisor"):
        assert mode(home / directory) == 0o700, f"{directory} is {oct(mode(home / directory))}"
    db = home / "data" / "bot" / "hux.db"
    assert db.stat().st_size > 0, "the bot did not use the database"
    private = [db, *sorted((home / "logs").glob("*.log*")), *sorted((home / "data" / "bot").glob("hux.db-*"))]
    assert len(private) >= 6
    loose = {str(p.relative_to(home)): oct(mode(p)) for p in private if mode(p) & 0o077}
    assert not loose, f"readable by others: {loose}"
    # what the children create themselves (umask 077): Prometheus's TSDB, Alertmanager's state
    created = [p for d in ("prometheus", "alertmanager") for p in (home / "data" / d).rglob("*")]
    assert created, "Prometheus and Alertmanager wrote nothing"
    assert not [str(p) for p in created if mode(p) & 0o077]


def test_a_supervised_child_inherits_only_what_its_spec_names(supervised, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HUX_SMTP_PASSWORD", FAKE_SMTP)
    monkeypatch.setenv("HUX_TELEGRAM_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("LC_TIME", "C")
    paths = StackPaths(tmp_path)
    code = ("import os, time; open('made-by-child', 'w').write('x'); "
            "print('ENV', sorted(os.environ), flush=True); time.sleep(600)")
    stack = supervised(spec(paths, "child", code))
    ident = ProcessIdentity.from_dict(component(stack, "child")["identity"])
    env = environ_of(ident.pid)
    allowed = {n for n in BASE_ENV if not n.endswith("*")} | {"PYTHONUNBUFFERED"}
    assert set(env) - allowed == {"LC_TIME"}, sorted(env)
    made = wait_for(lambda: (p := tmp_path / "made-by-child").exists() and p, 10, "the child's file")
    assert mode(made) == 0o600
    assert mode(paths.logs / "child.log") == 0o600
