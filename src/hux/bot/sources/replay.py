"""Replay a JSONL file of timestamped group messages as if they arrived now.

One JSON object per line::

    {"ts": "2025-01-10T14:03:07Z", "group": "Solana Alpha Calls", "message_id": 812, "text": "..."}

``ts`` is ISO-8601 or unix seconds; ``group`` a chat title; ``message_id``
optional. The gaps between timestamps are replayed divided by ``speed`` (never
longer than ``max_gap_seconds``). Bad lines (not JSON, not UTF-8, too large,
empty text, wrong types) are refused and counted, and the replay goes on.

A checkpoint (``data/bot/replay-<feed>.json``: byte offset, line, loop) is
written after every accepted batch, so a restart resumes where the last one
stopped. Message keys carry the loop number, so each loop is new traffic and a
re-read after a crash is recognised as a redelivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from hux.bot.intake import Intake, IntakeStopped
from hux.bot.messages import ChatMessage, Rejected, check_timestamp, make_message
from hux.bot.sources import sleep_or_stop

log = logging.getLogger("hux.bot.sources.replay")
BATCH = 100


@dataclass
class Checkpoint:
    offset: int = 0
    line: int = 0
    loop: int = 0


def parse_timestamp(value: Any) -> float:
    """Unix seconds from ``ts`` (a number or ISO-8601), between 1970 and the year 9999; ``Rejected`` otherwise."""
    if isinstance(value, bool):
        raise Rejected("malformed", "ts must be unix seconds or an ISO-8601 time, got a boolean")
    if isinstance(value, (int, float)):
        return check_timestamp(value, "ts")
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value[:64].replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)  # a feed without zones is UTC, not the host's zone
            seconds = parsed.timestamp()
        except (ValueError, OverflowError, OSError):
            raise Rejected("malformed", f"ts {value[:40]!r} is not an ISO-8601 time") from None
        return check_timestamp(seconds, "ts")
    raise Rejected("malformed", f"ts must be unix seconds or an ISO-8601 time, got {type(value).__name__}")


class ReplaySource:
    name = "replay"

    def __init__(
        self,
        path: Path,
        *,
        speed: float = 1.0,
        loop: bool = True,
        max_gap_seconds: float = 5.0,
        max_message_bytes: int = 65536,
        checkpoint_dir: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.speed = speed
        self.loop = loop
        self.max_gap = max_gap_seconds
        self.max_bytes = max_message_bytes
        self.feed_id = hashlib.sha1(str(self.path.resolve()).encode()).hexdigest()[:10]
        self.checkpoint_path = (checkpoint_dir / f"replay-{self.feed_id}.json") if checkpoint_dir else None
        self.finished = asyncio.Event()  # set when a non-looping replay reached the end

    # -- checkpoint -------------------------------------------------------------------------
    def load_checkpoint(self) -> Checkpoint:
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return Checkpoint()
        try:
            data = json.loads(self.checkpoint_path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("path") != str(self.path.resolve()):
                return Checkpoint()
            values = [data["offset"], data["line"], data["loop"]]
            if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**62 for v in values):
                raise ValueError("offset, line and loop must be non-negative integers")
            return Checkpoint(*values)
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            log.warning("replay checkpoint %s unreadable; starting from the top", self.checkpoint_path)
            return Checkpoint()

    def save_checkpoint(self, cp: Checkpoint) -> None:
        if self.checkpoint_path is None:
            return
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"path": str(self.path.resolve()), "offset": cp.offset, "line": cp.line, "loop": cp.loop}), encoding="utf-8")
        os.replace(tmp, self.checkpoint_path)

    # -- parsing ----------------------------------------------------------------------------
    def parse_line(self, raw: bytes, key: str) -> tuple[ChatMessage, float]:
        """A message and its feed timestamp; ``Rejected`` for a bad line."""
        if len(raw) > self.max_bytes * 6 + 4096:  # JSON escaping can inflate text up to 6x
            raise Rejected("too_large", f"line is {len(raw)} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Rejected("decode_error", f"line is not UTF-8 ({exc.reason} at byte {exc.start})") from None
        try:
            record = json.loads(text)
        except ValueError as exc:  # also an int of over 4,300 digits
            raise Rejected("malformed", f"line is not JSON ({str(exc)[:120]})") from None
        except RecursionError:
            raise Rejected("malformed", "line nests JSON deeper than the parser follows") from None
        if not isinstance(record, dict):
            raise Rejected("malformed", f"line is a JSON {type(record).__name__}, expected an object")
        if "text" not in record:
            raise Rejected("malformed", "line has no 'text'")
        feed_ts = parse_timestamp(record.get("ts", 0))
        message = make_message(key=key, source=self.name, group=record.get("group"), text=record["text"],
                               sent_at=time.time(), max_bytes=self.max_bytes)
        return message, feed_ts

    # -- the loop ---------------------------------------------------------------------------
    async def run(self, intake: Intake, stop: asyncio.Event) -> None:
        cp = self.load_checkpoint()
        if cp.offset:
            log.info("replay resumes %s at line %d (loop %d)", self.path.name, cp.line, cp.loop)
        while not stop.is_set():
            try:
                fh = open(self.path, "rb")
            except OSError as exc:
                log.error("replay feed %s cannot be read (%s): fix bot.replay.path", self.path, exc.strerror)
                self.finished.set()
                return
            with fh:
                if cp.offset:
                    fh.seek(cp.offset)
                try:
                    played = await self._play(fh, cp, intake, stop)
                except IntakeStopped:
                    return  # stopped while the shared inbox was full: the checkpoint stays before that batch
            if played is None:
                return
            if not self.loop:
                log.info("replay of %s finished (%d lines)", self.path.name, cp.line)
                self.finished.set()
                return
            if played == 0 and await sleep_or_stop(stop, max(1.0, self.max_gap)):
                return  # nothing replayable in the whole file: do not spin
            cp = Checkpoint(0, 0, cp.loop + 1)
            self.save_checkpoint(cp)

    async def _play(self, fh: BinaryIO, cp: Checkpoint, intake: Intake, stop: asyncio.Event) -> int | None:
        """Play from the current offset to the end; the messages accepted, or None if stopped first."""
        batch: list[ChatMessage] = []
        line = cp.line  # physical lines consumed before the file position
        accepted = 0
        prev_ts: float | None = None
        due = time.monotonic()
        while True:
            raw = fh.readline()
            if not raw:
                accepted += await self._flush(stop, batch, fh.tell(), line, cp, intake)
                return accepted
            line += 1
            stripped = raw.strip()
            if not stripped:
                continue  # blank lines are layout, not messages
            try:
                message, feed_ts = self.parse_line(stripped, f"replay:{self.feed_id}:{cp.loop}:{line}")
            except Rejected as exc:
                intake.reject(self.name, exc, f"{self.path.name}:{line}")
                continue
            gap = 0.0 if prev_ts is None else min(self.max_gap, max(0.0, (feed_ts - prev_ts) / self.speed))
            prev_ts = feed_ts
            due += gap
            now = time.monotonic()
            if due > now:
                if batch:
                    accepted += await self._flush(stop, batch, fh.tell() - len(raw), line - 1, cp, intake)
                if await sleep_or_stop(stop, due - now):
                    return None
            elif now - due > 1.0:
                due = now  # fell behind (back-pressure): do not burst to catch up
            message.sent_at = time.time()
            batch.append(message)
            if len(batch) >= BATCH or stop.is_set():
                accepted += await self._flush(stop, batch, fh.tell(), line, cp, intake)
                if stop.is_set():
                    return None

    async def _flush(self, stop: asyncio.Event, batch: list[ChatMessage], offset: int, line: int, cp: Checkpoint,
                     intake: Intake) -> int:
        """Accept the batch durably, then move the checkpoint past it."""
        count = len(batch)
        if batch:
            await intake.accept(batch, stop=stop)
            batch.clear()
        cp.offset, cp.line = offset, line
        self.save_checkpoint(cp)
        return count
