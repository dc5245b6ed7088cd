"""The notification targets of the end-to-end suite: where Alertmanager's messages land.

Three receivers, each a real network server on an ephemeral loopback port,
recording what arrives with the monotonic time it arrived:

* ``SmtpRecorder``: an in-process SMTP server (aiosmtpd) standing in for the
  operator's mail relay. ``go_down()`` closes its port (connection refused),
  ``reject()`` keeps it up but answers every RCPT with a 5xx; ``restore()``
  brings normal delivery back.
* ``SlackDouble``: a Slack incoming webhook (``POST /services/T…/B…/secret``
  with a JSON body holding ``text``, ``attachments`` or ``blocks``; answers
  ``200 ok`` in ``text/plain``, ``400 invalid_payload`` / ``400 no_text`` on bad
  bodies, and ``500 rollup_error`` when told to fail), as documented by Slack.
* ``WebhookRecorder``: a plain endpoint for Alertmanager's webhook integration.
  It checks the documented payload (``version`` "4", ``groupKey``, ``status``,
  ``receiver``, ``groupLabels``, ``commonLabels``, ``commonAnnotations``,
  ``externalURL``, ``alerts[]``) and can be told to answer 500.

Every message is reduced to a ``Notification``: which receiver kind, firing or
resolved, the alert names in it, and its human-readable text, so a scenario can
ask "did all three receivers get exactly one firing ServiceDown?".
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

from aiosmtpd.controller import Controller

from tests.conftest import free_port

KINDS = ("email", "slack", "webhook")

_STATUS_WORDS = re.compile(r"\b(FIRING|RESOLVED)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Notification:
    """One message as a receiver saw it."""

    kind: str                      # "email" | "slack" | "webhook"
    status: str | None             # "firing" | "resolved" | None when the message does not say
    alertnames: frozenset[str]     # alert names the message is about
    text: str                      # everything a person would read, flattened
    received_at: float             # time.monotonic() when it arrived
    delivered: bool                # False when the receiver answered with a failure
    raw: Any = field(repr=False, compare=False, default=None)
    alerts: tuple[dict, ...] = field(repr=False, compare=False, default=())  # webhook only: the alert objects

    def mentions(self, alertname: str) -> bool:
        return alertname in self.alertnames


def _status_from_text(*texts: str) -> str | None:
    """Firing/resolved as the title or subject states it (the first word that says so)."""
    for text in texts:
        match = _STATUS_WORDS.search(text or "")
        if match:
            return match.group(1).lower()
    return None


def _names_in(text: str, known: Iterable[str]) -> frozenset[str]:
    return frozenset(name for name in known if re.search(rf"\b{re.escape(name)}\b", text))


def _subject_names(title: str, text: str, known: Iterable[str]) -> frozenset[str]:
    """The alerts a message is about: those its title names (the body's first steps may name related alerts,
    e.g. "see HostInodesLow"); the whole text only when the title names none (a group of several alertnames)."""
    known = tuple(known)
    return _names_in(title, known) or _names_in(text, known)


class _Recorder:
    """The shared part: a thread-safe list of notifications and a bounded wait."""

    kind = ""

    def __init__(self, known_alertnames: Iterable[str]) -> None:
        self.known_alertnames = tuple(known_alertnames)
        self._items: list[Notification] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def _record(self, item: Notification) -> None:
        with self._changed:
            self._items.append(item)
            self._changed.notify_all()

    @property
    def notifications(self) -> list[Notification]:
        with self._lock:
            return list(self._items)

    def delivered(self) -> list[Notification]:
        return [n for n in self.notifications if n.delivered]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def wait_for(
        self, predicate: Callable[[Notification], bool], timeout: float, *, since: float = 0.0
    ) -> Notification | None:
        """The first delivered notification after ``since`` matching ``predicate``, waiting at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for item in self._items:
                    if item.delivered and item.received_at >= since and predicate(item):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(min(left, 0.5))


# --------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class _SmtpMode:
    up: bool = True
    reject: bool = False


class _SmtpHandler:
    """aiosmtpd handler: accept (or refuse) recipients, record each accepted message."""

    def __init__(self, recorder: "SmtpRecorder") -> None:
        self.recorder = recorder

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # aiosmtpd API
        if self.recorder.mode.reject:
            self.recorder.refused += 1
            return "554 5.7.1 relay refused by test"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd API
        self.recorder._accept(envelope)
        return "250 Message accepted for delivery"


class SmtpRecorder(_Recorder):
    """A real SMTP server on 127.0.0.1:<port> that keeps every message it accepts."""

    kind = "email"

    def __init__(self, known_alertnames: Iterable[str], port: int | None = None) -> None:
        super().__init__(known_alertnames)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.mode = _SmtpMode()
        self.refused = 0
        self._controller: Controller | None = None

    @property
    def smarthost(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "SmtpRecorder":
        if self._controller is None:
            # aiosmtpd's Controller runs its own event loop in a thread and waits until the port answers.
            self._controller = Controller(_SmtpHandler(self), hostname=self.host, port=self.port, ready_timeout=10)
            self._controller.start()
        self.mode = _SmtpMode(up=True, reject=self.mode.reject)
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def go_down(self) -> None:
        """Close the port: Alertmanager's dial fails with 'connection refused'."""
        self.stop()
        self.mode = _SmtpMode(up=False, reject=False)

    def reject(self) -> None:
        """Stay up but refuse every recipient with 554."""
        self.mode = _SmtpMode(up=True, reject=True)

    def restore(self) -> None:
        self.mode = _SmtpMode(up=True, reject=False)
        self.start()

    def _accept(self, envelope) -> None:
        message: EmailMessage = email.message_from_bytes(envelope.original_content, policy=email.policy.default)  # type: ignore[assignment]
        subject = str(message.get("Subject", ""))
        bodies = []
        parts: dict[str, str] = {}   # as sent: "plain" and "html"
        for part in message.walk():
            if part.get_content_maintype() == "text":
                content = part.get_content()
                parts[part.get_content_subtype()] = content
                if part.get_content_subtype() == "html":
                    content = _html_to_text(content)
                bodies.append(content)
        text = "\n".join([subject, *bodies])
        self._record(
            Notification(
                kind=self.kind,
                status=_status_from_text(subject, text),
                alertnames=_subject_names(subject, text, self.known_alertnames),
                text=text,
                received_at=time.monotonic(),
                delivered=True,
                raw={
                    "subject": subject,
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "headers": dict(message.items()),
                    "parts": parts,
                },
            )
        )


def _html_to_text(html: str) -> str:
    """Enough HTML-to-text for assertions: drop tags, style/script blocks and collapse space."""
    html = re.sub(r"(?is)<(style|script)[^>]*>.*?</\1>", " ", html)
    text = re.sub(r"(?s)<[^>]+>", " ", html)
    text = (
        text.replace("&nbsp;", " ").replace("&lt;", "<").replace("&gt;", ">")
        .replace("&#34;", '"').replace("&#39;", "'").replace("&quot;", '"').replace("&amp;", "&")
    )
    lines = (re.sub(r"\s+", " ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


# --------------------------------------------------------------------------- HTTP receivers


class _HttpRecorder(_Recorder):
    """A threaded HTTP server on 127.0.0.1 answering POSTs through ``_handle``."""

    def __init__(self, known_alertnames: Iterable[str]) -> None:
        super().__init__(known_alertnames)
        self.failing_status: int | None = None
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # http.server API
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, reply, content_type = outer._handle(self.path, dict(self.headers), body)
                data = reply.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # http.server API
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, fmt: str, *args: Any) -> None:  # keep test output clean
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"{self.kind}-double", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_with(self, status: int = 500) -> None:
        """Answer every request with ``status`` until ``restore()``."""
        self.failing_status = status

    def restore(self) -> None:
        self.failing_status = None

    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, str]:
        raise NotImplementedError


class SlackDouble(_HttpRecorder):
    """A Slack incoming webhook: POST JSON to /services/T…/B…/<secret>, answers ``ok``."""

    kind = "slack"
    PATH = "/services/T0HUXTEST/B0HUXTEST/e2e-secret-not-real"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.PATH}"

    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, str]:
        self.requests += 1
        received = time.monotonic()
        if path != self.PATH:
            return 404, "no_service", "text/plain"
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return 400, "invalid_payload", "text/plain"
        if not isinstance(payload, dict):
            return 400, "invalid_payload", "text/plain"
        if not (payload.get("text") or payload.get("attachments") or payload.get("blocks")):
            return 400, "no_text", "text/plain"
        status = self.failing_status or 200
        self._record(self._notification(payload, received, delivered=status == 200))
        if status != 200:
            return status, "rollup_error", "text/plain"
        return 200, "ok", "text/plain"

    def _notification(self, payload: dict, received: float, delivered: bool) -> Notification:
        titles: list[str] = []
        parts: list[str] = [str(payload.get("text") or "")]
        for att in payload.get("attachments") or []:
            titles.append(str(att.get("title") or ""))
            parts += [str(att.get(k) or "") for k in ("pretext", "title", "text", "fallback", "footer")]
            parts += [f"{f.get('title', '')}: {f.get('value', '')}" for f in att.get("fields") or []]
        parts += _block_texts(payload.get("blocks") or [])
        text = "\n".join(p for p in parts if p)
        return Notification(
            kind=self.kind,
            status=_status_from_text(*titles, str(payload.get("text") or ""), text),
            alertnames=_subject_names("\n".join(titles), text, self.known_alertnames),
            text=text,
            received_at=received,
            delivered=delivered,
            raw=payload,
        )


def _block_texts(blocks: list) -> list[str]:
    """Text out of Block Kit blocks (section/header/context), recursively."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, dict):
            for key in ("text", "fields", "elements"):
                value = block.get(key)
                if isinstance(value, dict):
                    out.append(str(value.get("text") or ""))
                elif isinstance(value, list):
                    out += _block_texts(value)
                elif isinstance(value, str):
                    out.append(value)
    return out


_WEBHOOK_KEYS = ("version", "groupKey", "status", "receiver", "groupLabels", "commonLabels",
                 "commonAnnotations", "externalURL", "alerts")


class WebhookRecorder(_HttpRecorder):
    """Alertmanager's generic webhook target; checks the version-4 payload shape."""

    kind = "webhook"
    PATH = "/alertmanager"

    def __init__(self, known_alertnames: Iterable[str]) -> None:
        super().__init__(known_alertnames)
        self.malformed: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.PATH}"

    def _handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, str]:
        self.requests += 1
        received = time.monotonic()
        if path != self.PATH:
            return 404, "not found", "text/plain"
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            self.malformed.append("body is not JSON")
            return 400, "body is not JSON", "text/plain"
        problem = _webhook_problem(payload)
        if problem:
            self.malformed.append(problem)
            return 400, problem, "text/plain"
        status = self.failing_status or 200
        alerts = tuple(payload["alerts"])
        names = frozenset(a["labels"].get("alertname", "") for a in alerts)
        text = "\n".join(
            f"{a['labels'].get('alertname', '')} {a['status']} {json.dumps(a['labels'], sort_keys=True)} "
            f"{json.dumps(a.get('annotations', {}), sort_keys=True)}"
            for a in alerts
        )
        self._record(
            Notification(
                kind=self.kind,
                status=payload["status"],
                alertnames=names,
                text=text,
                received_at=received,
                delivered=status == 200,
                raw=payload,
                alerts=alerts,
            )
        )
        if status != 200:
            return status, "receiver failing (test)", "text/plain"
        return 200, "", "text/plain"


def _webhook_problem(payload: Any) -> str | None:
    """What is wrong with an Alertmanager webhook payload, or None when it has the documented shape."""
    if not isinstance(payload, dict):
        return "payload is not a JSON object"
    missing = [k for k in _WEBHOOK_KEYS if k not in payload]
    if missing:
        return f"payload lacks {missing}"
    if payload["version"] != "4":
        return f"version is {payload['version']!r}, expected '4'"
    if payload["status"] not in ("firing", "resolved"):
        return f"status is {payload['status']!r}"
    for alert in payload["alerts"]:
        for key in ("status", "labels", "annotations", "startsAt", "endsAt", "fingerprint"):
            if key not in alert:
                return f"an alert lacks {key!r}"
    return None


# --------------------------------------------------------------------------- all three


class Receivers:
    """The three targets together, with the queries a scenario needs."""

    def __init__(self, known_alertnames: Iterable[str]) -> None:
        names = tuple(known_alertnames)
        self.email = SmtpRecorder(names)
        self.slack = SlackDouble(names)
        self.webhook = WebhookRecorder(names)

    @property
    def all(self) -> tuple[_Recorder, ...]:
        return (self.email, self.slack, self.webhook)

    def by_kind(self, kind: str) -> _Recorder:
        return {"email": self.email, "slack": self.slack, "webhook": self.webhook}[kind]

    def start(self) -> "Receivers":
        for recorder in self.all:
            recorder.start()
        return self

    def stop(self) -> None:
        for recorder in self.all:
            recorder.stop()

    def reset(self) -> None:
        """Forget what arrived and bring every receiver back to normal."""
        self.email.restore()
        self.slack.restore()
        self.webhook.restore()
        for recorder in self.all:
            recorder.clear()

    def delivered(self, alertname: str, status: str | None = None, *, kinds: Iterable[str] = KINDS,
                  since: float = 0.0) -> dict[str, list[Notification]]:
        out: dict[str, list[Notification]] = {}
        for kind in kinds:
            out[kind] = [
                n for n in self.by_kind(kind).delivered()
                if n.mentions(alertname) and n.received_at >= since and (status is None or n.status == status)
            ]
        return out

    def wait_all(self, alertname: str, status: str, timeout: float, *, kinds: Iterable[str] = KINDS,
                 since: float = 0.0) -> dict[str, Notification | None]:
        """Wait (together, bounded by ``timeout``) until each receiver kind delivered a matching message."""
        deadline = time.monotonic() + timeout
        found: dict[str, Notification | None] = {}
        for kind in kinds:
            found[kind] = self.by_kind(kind).wait_for(
                lambda n: n.mentions(alertname) and n.status == status,
                max(0.0, deadline - time.monotonic()),
                since=since,
            )
        return found
