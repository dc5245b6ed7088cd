"""Child processes of the end-to-end harness and the HTTP calls the scenarios make.

Every process the suite starts is a ``Child``: started with its output in a log
file under the test's HUX_HOME, stopped by its own pid (SIGTERM, then SIGKILL
after a bounded wait). Nothing is ever looked up or killed by name.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

T = TypeVar("T")


class StackError(AssertionError):
    """The harness could not bring a component to the state a scenario needs."""


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL: the process dies without cleanup, the way a crash looks."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.send_signal(signal.SIGKILL)
                self.popen.wait(timeout=10)


def start_child(name: str, argv: Sequence[str], log_dir: Path, *, env: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> Child:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None, cwd=cwd,
        )
    return Child(name=name, argv=list(argv), log_path=log_path, popen=popen)


def wait_until(probe: Callable[[], T], timeout: float, what: str, *, interval: float = 0.25) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - probes fail while a component starts
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


# --------------------------------------------------------------------------- HTTP


def http(method: str, url: str, body: Any = None, *, timeout: float = 5.0,
         auth: tuple[str, str] | None = None) -> tuple[int, Any]:
    """One JSON-or-text HTTP call; returns (status, decoded body). Never raises on HTTP status.

    ``auth``: (user, password) for basic auth (the stack's Prometheus, Alertmanager, node_exporter).
    """
    data = None
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def get_ok(url: str, timeout: float = 2.0, auth: tuple[str, str] | None = None) -> bool:
    try:
        status, _ = http("GET", url, timeout=timeout, auth=auth)
    except OSError:
        return False
    return status == 200


class PrometheusApi:
    def __init__(self, base_url: str, auth: tuple[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth

    def query(self, expr: str) -> list[dict]:
        url = f"{self.base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        status, body = http("GET", url, auth=self.auth)
        if status != 200 or body.get("status") != "success":
            raise StackError(f"Prometheus query {expr!r} failed: {status} {body}")
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        """The single scalar an instant query returns, or None when it returns nothing."""
        result = self.query(expr)
        if not result:
            return None
        return float(result[0]["value"][1])

    def alerts(self) -> list[dict]:
        status, body = http("GET", f"{self.base_url}/api/v1/alerts", auth=self.auth)
        if status != 200:
            raise StackError(f"Prometheus /api/v1/alerts answered {status}")
        return body["data"]["alerts"]

    def alert_states(self, alertname: str) -> list[str]:
        return [a["state"] for a in self.alerts() if a["labels"].get("alertname") == alertname]

    def targets(self) -> list[dict]:
        status, body = http("GET", f"{self.base_url}/api/v1/targets?state=active", auth=self.auth)
        if status != 200:
            raise StackError(f"Prometheus /api/v1/targets answered {status}")
        return body["data"]["activeTargets"]

    def rules(self) -> list[dict]:
        status, body = http("GET", f"{self.base_url}/api/v1/rules", auth=self.auth)
        if status != 200:
            raise StackError(f"Prometheus /api/v1/rules answered {status}")
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]


class AlertmanagerApi:
    def __init__(self, base_url: str, auth: tuple[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth

    def alerts(self, **filters: str) -> list[dict]:
        query = urllib.parse.urlencode([("filter", f'{k}="{v}"') for k, v in filters.items()])
        status, body = http("GET", f"{self.base_url}/api/v2/alerts?{query}", auth=self.auth)
        if status != 200:
            raise StackError(f"Alertmanager /api/v2/alerts answered {status}: {body}")
        return body

    def silence(self, matchers: Mapping[str, str], seconds: float, comment: str) -> str:
        now = time.time()
        body = {
            "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()],
            "startsAt": _iso(now - 1),
            "endsAt": _iso(now + seconds),
            "createdBy": "e2e-suite",
            "comment": comment,
        }
        status, reply = http("POST", f"{self.base_url}/api/v2/silences", body, auth=self.auth)
        if status != 200:
            raise StackError(f"creating a silence failed: {status} {reply}")
        return reply["silenceID"]

    def expire_silence(self, silence_id: str) -> None:
        status, reply = http("DELETE", f"{self.base_url}/api/v2/silence/{silence_id}", auth=self.auth)
        if status != 200:
            raise StackError(f"expiring silence {silence_id} failed: {status} {reply}")

    def silences(self) -> list[dict]:
        status, body = http("GET", f"{self.base_url}/api/v2/silences", auth=self.auth)
        if status != 200:
            raise StackError(f"Alertmanager /api/v2/silences answered {status}")
        return body

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples on Alertmanager's own /metrics whose labels match."""
        status, text = http("GET", f"{self.base_url}/metrics", auth=self.auth)
        if status != 200:
            raise StackError(f"Alertmanager /metrics answered {status}")
        return sum_samples(str(text), name, labels)


def sum_samples(exposition: str, name: str, labels: Mapping[str, str]) -> float:
    total = 0.0
    for line in exposition.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        have = dict(
            part.split("=", 1) for part in _split_labels(label_text.rstrip("}")) if "=" in part
        )
        have = {k: v.strip('"') for k, v in have.items()}
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


def _split_labels(text: str) -> list[str]:
    parts, current, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current:
        parts.append(current)
    return parts


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1000):03d}Z"
