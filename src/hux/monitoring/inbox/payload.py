"""The Alertmanager webhook body (version 4), validated as hostile input.

Alertmanager's ``webhook_config`` posts (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config)::

    {"version": "4", "groupKey": "...", "truncatedAlerts": 0, "status": "firing|resolved",
     "receiver": "...", "groupLabels": {...}, "commonLabels": {...}, "commonAnnotations": {...},
     "externalURL": "...", "alerts": [{"status": "firing|resolved", "labels": {...},
     "annotations": {...}, "startsAt": "<rfc3339>", "endsAt": "<rfc3339>", "generatorURL": "...",
     "fingerprint": "..."}]}

Anyone on this machine can post to the inbox, so every field is checked before
use: the body's size, its JSON, each field's type, and the count and length
of alerts, labels and annotations. A refusal is a :class:`Rejected` with a
bounded ``reason`` (``hux.bot.metric_names.INBOX_REJECT_REASONS``) and a message
saying what was wrong; unknown keys are ignored (later versions add some).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from hux.bot.metric_names import CountedError

MAX_ALERTS = 1000
MAX_LABELS = 64
MAX_NAME = 128
MAX_LABEL_VALUE = 1024
MAX_ANNOTATION_VALUE = 8192
MAX_FIELD = 2048
STATUSES = ("firing", "resolved")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Rejected(CountedError, ValueError):
    """A body the inbox refuses; ``reason`` (INBOX_REJECT_REASONS) is the label it is counted under."""


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str
    fingerprint: str

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")


@dataclass(frozen=True)
class Notification:
    receiver: str
    status: str
    group_key: str
    truncated: int
    alerts: tuple[Alert, ...]


def _bad(message: str) -> Rejected:
    return Rejected("bad_schema", message)


def _string(value: Any, where: str, limit: int = MAX_FIELD, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise _bad(f"{where} must be a string")
    if len(value) > limit:
        raise _bad(f"{where} is longer than {limit} characters")
    return value


def _mapping(value: Any, where: str, limit: int) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"{where} must be an object of strings")
    if len(value) > MAX_LABELS:
        raise _bad(f"{where} has more than {MAX_LABELS} entries")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or len(key) > MAX_NAME or not _LABEL_NAME.fullmatch(key):
            raise _bad(f"{where} has a key that is not a label name (letters, digits, _; at most {MAX_NAME})")
        out[key] = _string(item, f"{where}.{key}", limit)
    return out


def _status(value: Any, where: str) -> str:
    if value not in STATUSES:
        raise _bad(f"{where} must be \"firing\" or \"resolved\"")
    return str(value)


def _fingerprint(labels: dict[str, str]) -> str:
    text = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _alert(value: Any, index: int) -> Alert:
    where = f"alerts[{index}]"
    if not isinstance(value, dict):
        raise _bad(f"{where} must be an object")
    labels = _mapping(value.get("labels"), f"{where}.labels", MAX_LABEL_VALUE)
    if not labels.get("alertname"):
        raise _bad(f"{where}.labels has no alertname")
    fingerprint = _string(value.get("fingerprint"), f"{where}.fingerprint", 64, required=False)
    if fingerprint and not re.fullmatch(r"[0-9A-Za-z]+", fingerprint):
        raise _bad(f"{where}.fingerprint must be letters and digits")
    return Alert(
        status=_status(value.get("status"), f"{where}.status"),
        labels=labels,
        annotations=_mapping(value.get("annotations"), f"{where}.annotations", MAX_ANNOTATION_VALUE),
        starts_at=_string(value.get("startsAt"), f"{where}.startsAt", 64, required=False),
        ends_at=_string(value.get("endsAt"), f"{where}.endsAt", 64, required=False),
        fingerprint=fingerprint or _fingerprint(labels),
    )


def parse(body: bytes, max_bytes: int) -> Notification:
    """The notification in ``body``; :class:`Rejected` (reason and message) when it is not one."""
    if len(body) > max_bytes:
        raise Rejected("too_large", f"the body is larger than {max_bytes} bytes")
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Rejected("not_json", "the body is not JSON (UTF-8)") from None
    if not isinstance(document, dict):
        raise _bad("the body must be a JSON object (Alertmanager webhook version 4)")
    if document.get("version") != "4":
        raise _bad("version must be \"4\" (Alertmanager's webhook payload)")
    alerts = document.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise _bad("alerts must be a non-empty list")
    if len(alerts) > MAX_ALERTS:
        raise _bad(f"more than {MAX_ALERTS} alerts in one notification")
    truncated = document.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) or not 0 <= truncated <= 1_000_000_000:
        raise _bad("truncatedAlerts must be a non-negative integer")
    return Notification(
        receiver=_string(document.get("receiver"), "receiver", MAX_NAME),
        status=_status(document.get("status"), "status"),
        group_key=_string(document.get("groupKey"), "groupKey", MAX_FIELD, required=False),
        truncated=truncated,
        alerts=tuple(_alert(item, i) for i, item in enumerate(alerts)),
    )
