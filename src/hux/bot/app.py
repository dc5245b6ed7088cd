"""Wiring: one ``BotApp`` owns every part of a running bot and starts/stops them in order.

What differs between a live run and the demo (endpoints, token, sources,
pacing, cooldown, threshold) comes in as a ``RunProfile``, resolved once
before the app is built (``hux.bot.profile.resolve_profile``); the app reads
it and nothing else about the mode. Its ``mode`` is what logs, ``/ready`` and
``hux_build_info{mode}`` report. The app owns the profile it is given and
closes it last (the demo's doubles stop with it).

On PostgreSQL the app is one instance of possibly several (``hux.bot.cluster``):
it claims its work from the inbox, runs the sources only while it holds the
leader lease, and decides tokens and spends upstream budgets in the database.
On SQLite it is the only instance and says so to a second one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Protocol

from sqlalchemy.engine import make_url

from hux.bot.admin import THRESHOLD_SETTING, AdminCommands, Mutes, StatusView, follow_admin_changes, stored_threshold
from hux.bot.calls import CallTracker, call_horizons, poll_interval
from hux.bot.clients.dexscreener import DexScreenerClient
from hux.bot.clients.goplus import GoPlusClient
from hux.bot.clients.rugcheck import RugCheckClient
from hux.bot.clients.telegram import TelegramBotApi
from hux.bot.cluster import (
    Cluster,
    Coordinator,
    SharedBudget,
    SharedGate,
    SingleInstanceError,
    instance_id,
    settle,
    single_instance_lock,
)
from hux.bot.config import BotConfig, redact_url
from hux.bot.dedupe import Gate, MentionTracker, TokenGate
from hux.bot.enrich import Enricher, PairBatcher, PairLinkBatcher
from hux.bot.intake import Intake, IntakeQueue, IntakeStopped
from hux.bot.logsetup import register_secrets
from hux.bot.messages import ChatMessage
from hux.bot.metrics import BotMetrics
from hux.bot.outputs import OutputChannel, TelegramOutput, WebhookOutput
from hux.bot.persistence import Persistence
from hux.bot.pipeline import GroupRoute, Pipeline, PipelineSettings
from hux.bot.profile import RunProfile
from hux.bot.server import HttpServer, ReadyState, build_app
from hux.bot.sources import Source, sleep_or_stop
from hux.bot.sources.replay import ReplaySource
from hux.bot.sources.telegram import TelegramSource
from hux.bot.store import InboxBound, Store
from hux.bot.telegram_chats import parse_chats
from hux.config import ConfigError, read_secret

log = logging.getLogger("hux.bot")


class _Closeable(Protocol):
    async def aclose(self) -> None: ...


@dataclass
class BotApp:
    config: BotConfig
    profile: RunProfile
    metrics: BotMetrics | None = None

    server: HttpServer | None = None
    persistence: Persistence | None = None
    pipeline: Pipeline | None = None
    intake: Intake | None = None
    sources: list[Source] = field(default_factory=list)
    _source_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _closers: list[_Closeable] = field(default_factory=list)
    _recovery: asyncio.Task[None] | None = None
    _telegram_user: Callable[[], Any] | None = None  # makes the user account's MTProto client (live, enabled)
    _tracker: asyncio.Task[None] | None = None
    _admin_sync: asyncio.Task[None] | None = None
    admin: AdminCommands | None = None
    cluster: Cluster | None = None
    _instance_lock: IO[str] | None = None
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def mode(self) -> str:
        return self.profile.mode

    @property
    def port(self) -> int:
        return self.server.port if self.server else self.config.port

    # -- start -------------------------------------------------------------------------------
    async def start(self) -> None:
        cfg, profile = self.config, self.profile
        if self.metrics is None:
            self.metrics = BotMetrics(group_label_limit=cfg.group_label_limit, mode=self.mode)
        m = self.metrics

        url = cfg.resolved_database_url()
        clustered = cfg.clustered()
        database = make_url(url).database
        if not clustered and database and database != ":memory:":
            try:
                self._instance_lock = single_instance_lock(Path(database))
            except SingleInstanceError as exc:
                raise ConfigError(str(exc)) from None
        horizons = call_horizons(profile.call_horizon_scale)
        store = Store(url, call_horizons=horizons)
        self.persistence = Persistence(
            store, m,
            # Instances that share a home (`hux up` with bot.instances > 1) each keep a spool of their own: one
            # draining another's file while it appends could lose the append.
            spool_path=cfg.state_dir() / "spool" / (f"intake-{cfg.port}.jsonl" if cfg.instances > 1 else "intake.jsonl"),
            probe_interval=cfg.db_probe_interval_seconds,
            retry_max=cfg.db_retry_max_seconds,
            max_pending=cfg.max_pending_writes,
            inbox_retention_seconds=cfg.inbox_retention_hours * 3600,
            retention_seconds=cfg.retention_days * 86400,
            prune_batch_rows=cfg.prune_batch_rows,
        )
        await self.persistence.start()
        queue = IntakeQueue(cfg.queue_capacity, m, cfg.fairness,
                            workers=cfg.workers if cfg.fairness.lend_idle_workers else None)
        if clustered:
            cl = cfg.cluster
            self.cluster = Cluster(
                Coordinator(url, instance_id(cfg.host, cfg.port), claim_ttl=cl.claim_ttl_seconds,
                            lease_ttl=cl.leader_lease_seconds, call_horizons=horizons),
                m, poll_interval=cl.claim_poll_seconds, configured_instances=cfg.instances,
            )
        else:
            m.cluster_leader.set(1)
            m.cluster_instances_live.set(1)
            m.cluster_instances_configured.set(1)
        if self.cluster is not None:
            # One bound in both modes: chat_queue_capacity per chat (refused beyond), queue_capacity in all (sources wait).
            self.intake = Intake(queue, self.persistence, m, shared=self.cluster.wake,
                                 bound=InboxBound(cfg.fairness.chat_queue_capacity, cfg.queue_capacity),
                                 room_poll_seconds=cfg.cluster.claim_poll_seconds)
        else:
            self.intake = Intake(queue, self.persistence, m)

        dex = DexScreenerClient.create(
            m, profile.dexscreener_url, rate_limit_per_minute=cfg.dexscreener.rate_limit_per_minute,
            cache_ttl=cfg.dexscreener.cache_ttl_seconds, timeout=cfg.dexscreener.timeout_seconds,
            max_retries=cfg.dexscreener.max_retries,
        )
        rug = RugCheckClient.create(
            m, profile.rugcheck_url, rate_limit_per_minute=cfg.rugcheck.rate_limit_per_minute,
            cache_ttl=cfg.rugcheck.cache_ttl_seconds, timeout=cfg.rugcheck.timeout_seconds,
            max_retries=cfg.rugcheck.max_retries,
        )
        goplus = GoPlusClient.create(
            m, profile.goplus_url, rate_limit_per_minute=cfg.goplus.rate_limit_per_minute,
            cache_ttl=cfg.goplus.cache_ttl_seconds, timeout=cfg.goplus.timeout_seconds,
            max_retries=cfg.goplus.max_retries,
        )
        self._closers += [dex, rug, goplus]
        if self.cluster is not None:
            for client in (dex.http, rug.http, goplus.http):
                if client.limiter is not None:
                    client.shared_budget = SharedBudget(self.cluster, client.api, client.limiter.rate, client.limiter.burst)
        telegram_api = None
        if profile.telegram_token:
            telegram_api = TelegramBotApi.create(profile.telegram_token, m, profile.telegram_api, timeout=10.0)
            self._closers.append(telegram_api)
        channels = self._channels(telegram_api)
        extra = self._extra_outputs(telegram_api)
        by_name = {c.name: c for c in (*channels, *extra)}
        for policy in cfg.groups:
            missing = [name for name in policy.outputs if name not in by_name]
            if missing:
                raise ConfigError(f"bot.groups: group {policy.group[:60]!r} routes to {', '.join(missing)}, which is not "
                                  "configured in this run (telegram: bot.telegram.alert_chat_id; webhook: bot.webhook.url)")
        routes = {p.group: GroupRoute(p.alert_threshold, p.muted, tuple(by_name[n] for n in p.outputs)) for p in cfg.groups}

        cooldown = profile.cooldown_seconds
        gate: Gate
        if self.cluster is not None:
            gate = SharedGate(self.cluster, cooldown)
        else:
            local = gate = TokenGate(cooldown)
            for key, decided_at in await self.persistence.recent_decisions(time.time() - cooldown):
                local.remember(key, time.time() - decided_at)
        size, wait = cfg.dexscreener.batch_size, cfg.dexscreener.batch_wait_seconds
        batcher = PairBatcher(dex, batch_size=size, wait_seconds=wait)
        # What admins set from Telegram outlives restarts: the threshold (/threshold) and the mutes (/mute).
        mutes = Mutes()
        mutes.load(await self.persistence.store_call("admin", store.active_mutes, time.time()) or {})
        threshold = profile.alert_threshold
        stored = stored_threshold(await self.persistence.store_call("admin", store.setting, THRESHOLD_SETTING))
        if stored is not None:
            threshold = stored
            log.info("alert threshold %g set by an admin (/threshold) overrides the configured %g", threshold,
                     profile.alert_threshold)
        self.pipeline = Pipeline(
            PipelineSettings(
                workers=cfg.workers,
                alert_threshold=threshold,
                max_addresses_per_message=cfg.max_addresses_per_message,
                lookups_per_message=cfg.lookups_per_message,
            ),
            m, queue, self.persistence,
            Enricher(batcher, rug, pair_lookup=PairLinkBatcher(dex, batch_size=size, wait_seconds=wait), evm_risk=goplus),
            channels, gate, MentionTracker(cfg.mention_window_seconds), mutes, routes,
        )
        self.pipeline.start()
        if telegram_api is not None and profile.alert_chat and cfg.telegram.admin_user_ids:
            pipeline = self.pipeline
            self.admin = AdminCommands(
                telegram_api, self.persistence, m, alert_chat=profile.alert_chat, admin_ids=cfg.telegram.admin_user_ids,
                per_minute=cfg.telegram.admin_commands_per_minute, mutes=mutes, set_threshold=pipeline.set_threshold,
                threshold=lambda: pipeline.settings.alert_threshold, alertmanager_url=cfg.telegram.status_alertmanager_url,
                alertmanager_credentials=cfg.telegram.status_alertmanager_credentials,
                status=lambda: StatusView(self.mode, bool(self.persistence and self.persistence.database_up), len(queue),
                                          cfg.queue_capacity, [s.name for s in self.sources]))
            self._closers.append(self.admin)
        # Re-checks share the lookups' batcher (one DexScreener budget).
        tracker = CallTracker(self.persistence, batcher, (*channels, *extra), m, checks_per_round=cfg.calls.checks_per_round,
                              interval=poll_interval(cfg.calls.check_interval_seconds, horizons))
        if self.cluster is None:  # several instances: the leader alone re-checks (one follow-up per call)
            self._tracker = asyncio.create_task(tracker.run(self.stop_event), name="hux-call-tracker")
        else:  # the leader takes the admin commands; the others follow what they set
            pipeline = self.pipeline
            self._admin_sync = asyncio.create_task(follow_admin_changes(
                self.persistence, mutes, pipeline.set_threshold, lambda: pipeline.settings.alert_threshold,
                self.stop_event, cfg.telegram.admin_sync_seconds), name="hux-admin-sync")

        ready = ReadyState(
            mode=self.mode,
            database_up=lambda: bool(self.persistence and self.persistence.database_up),
            queue_length=lambda: len(queue),
            queue_capacity=cfg.queue_capacity,
            sources=lambda: [s.name for s in self.sources],
        )
        self.server = HttpServer(build_app(m.registry, ready), cfg.host, cfg.port)
        await self.server.start()

        poll = telegram_api if profile.poll_telegram else None
        if self.mode == "live" and cfg.telegram_user.enabled:
            self._telegram_user = telegram_user_client_factory(cfg)
        if self.cluster is not None:
            # Pending rows (and the spool, drained by the probe) are claimed like any other work.
            cluster, ahead = self.cluster, cfg.cluster.claim_ahead

            async def deliver(messages: list[ChatMessage]) -> None:
                for message in settle(messages):
                    await queue.put(message)

            async def lead(term: asyncio.Event) -> None:
                await asyncio.gather(self._lead(poll, term), tracker.run(term))

            await cluster.start(on_lead=lead, deliver=deliver,
                                room=lambda: max(0, cfg.workers + ahead - queue.unfinished))
        else:
            recovered = await self.persistence.recover()
            if recovered:
                self._recovery = asyncio.create_task(self.intake.requeue(recovered), name="hux-recovery")
            self.sources = self._sources(poll)
            for source in self.sources:
                self._source_tasks.append(asyncio.create_task(self._run_source(source, self.stop_event),
                                                              name=f"hux-source-{source.name}"))

        where = f"http://{cfg.host}:{self.port}"
        if profile.notice:
            log.warning("%s", profile.notice, extra={"mode": self.mode})
        log.info(
            "bot ready on %s (/metrics /health /ready), %s mode, database %s, sources: %s, outputs: %s",
            where, self.mode, redact_url(store.url), ", ".join(s.name for s in self.sources) or "none",
            ", ".join(c.name for c in channels) or "none",
            extra={"mode": self.mode, "port": self.port},
        )

    def _channels(self, telegram_api: TelegramBotApi | None) -> list[OutputChannel]:
        cfg, profile = self.config, self.profile
        assert self.metrics is not None
        channels: list[OutputChannel] = []
        if telegram_api is not None and profile.alert_chat:
            channels.append(TelegramOutput(telegram_api, profile.alert_chat,
                                           rate_limit_per_minute=profile.alert_rate_limit_per_minute))
        if profile.webhook_url:
            try:
                webhook = WebhookOutput.create(profile.webhook_url, self.metrics, timeout=cfg.webhook.timeout_seconds)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            channels.append(webhook)
            self._closers.append(webhook)
        return channels

    def _extra_outputs(self, telegram_api: TelegramBotApi | None) -> list[OutputChannel]:
        """The ``[[bot.outputs]]``: more Telegram chats and webhooks, each with its own pacing and metrics."""
        assert self.metrics is not None
        outputs: list[OutputChannel] = []
        for out in self.config.outputs:
            if out.type == "telegram":
                if telegram_api is None:
                    raise ConfigError(f"bot.outputs {out.name}: a telegram output needs the bot's Telegram token "
                                      f"(${self.config.telegram.token_env})")
                outputs.append(TelegramOutput(telegram_api, out.chat_id, rate_limit_per_minute=out.rate_limit_per_minute,
                                              name=out.name))
                continue
            url = read_secret(env=out.url_env)
            if not url:
                raise ConfigError(f"bot.outputs {out.name}: ${out.url_env} is empty: set it to the webhook's URL")
            try:
                webhook = WebhookOutput.create(url, self.metrics, name=out.name, timeout=self.config.webhook.timeout_seconds,
                                               rate_limit_per_minute=out.rate_limit_per_minute)
            except ValueError as exc:
                raise ConfigError(f"bot.outputs {out.name}: {exc}") from None
            outputs.append(webhook)
            self._closers.append(webhook)
        return outputs

    def _sources(self, telegram_api: TelegramBotApi | None) -> list[Source]:
        cfg = self.config
        sources: list[Source] = []
        if telegram_api is not None:
            sources.append(TelegramSource(telegram_api, poll_timeout=cfg.telegram.poll_timeout_seconds,
                                          limit=cfg.telegram.poll_limit, max_message_bytes=cfg.max_message_bytes,
                                          allowed_chats=cfg.telegram.allowed_chats, offsets=self.cluster,
                                          commands=self.admin))
        if self._telegram_user is not None:
            from hux.bot.sources.telegram_user import TelegramUserSource, state_path  # Telethon: only when enabled

            user = cfg.telegram_user
            sources.append(TelegramUserSource(
                self._telegram_user, parse_chats(user.chats), self.metrics or BotMetrics(),
                state_path=state_path(cfg.state_dir()), max_message_bytes=cfg.max_message_bytes,
                catch_up_messages=user.catch_up_messages, flood_wait_max_seconds=user.flood_wait_max_seconds,
                reconnect_max_seconds=user.reconnect_max_seconds,
            ))
        feed = self.profile.feed
        if feed is not None:
            sources.append(ReplaySource(feed.path, speed=feed.speed, loop=feed.loop, max_gap_seconds=cfg.replay.max_gap_seconds,
                                        max_message_bytes=cfg.max_message_bytes, checkpoint_dir=cfg.state_dir()))
        return sources

    async def _lead(self, telegram_api: TelegramBotApi | None, term: asyncio.Event) -> None:
        """While this instance leads: run the sources (fresh ones each term: the Telegram offset is read again)."""
        self.sources = self._sources(telegram_api)
        try:
            await asyncio.gather(*(self._run_source(source, term) for source in self.sources))
        finally:
            if term.is_set():  # leadership ended (a finished replay still names its source)
                self.sources = []

    async def _run_source(self, source: Source, stop: asyncio.Event) -> None:
        assert self.intake is not None
        while not stop.is_set():
            try:
                await source.run(self.intake, stop)
                return
            except asyncio.CancelledError:
                raise
            except IntakeStopped:
                return  # stopped while its batch waited for room: it stays upstream
            except Exception:  # a source bug must not end the bot; restart it
                log.exception("source %s failed; restarting it in 5 s", source.name)
                await sleep_or_stop(stop, 5.0)

    # -- run / stop ------------------------------------------------------------------------
    async def wait(self) -> None:
        await self.stop_event.wait()

    async def stop(self) -> None:
        """Stop sources, let workers finish what is queued, flush writes, close everything."""
        grace = self.config.shutdown_grace_seconds
        self.stop_event.set()
        log.info("stopping: sources, then queued work (up to %.0f s), then held writes", grace)
        if self.cluster is not None:
            await self.cluster.stop()  # the sources first, and no new claims
        if self._source_tasks:
            _, pending = await asyncio.wait(self._source_tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._source_tasks, return_exceptions=True)
        for task in [t for t in (self._recovery, self._tracker, self._admin_sync) if t is not None]:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.pipeline is not None:
            if not await self.pipeline.drain(grace):
                log.warning("stopping with messages still queued; they stay pending in the inbox for the next start")
            await self.pipeline.stop()
        if self.persistence is not None:
            await self.persistence.close(grace)
        if self.cluster is not None:
            await self.cluster.close()
        for closer in self._closers:
            try:
                await closer.aclose()
            except Exception:  # noqa: BLE001
                log.debug("closing a client failed", exc_info=True)
        if self.server is not None:
            await self.server.stop()
        await self.profile.aclose()
        if self._instance_lock is not None:
            self._instance_lock.close()
        log.info("bot stopped")


def telegram_user_client_factory(cfg: BotConfig) -> Callable[[], Any]:
    """Makes the user account's Telethon client; ``ConfigError`` saying what to do when it cannot log in."""
    from telethon import TelegramClient

    from hux.bot.sources.telegram_user import secure_session_file, session_path

    user = cfg.telegram_user
    api_hash = user.api_hash()
    if not api_hash:
        raise ConfigError(f"bot.telegram_user is enabled but the api hash is not set: put it in ${user.api_hash_env} "
                          "or bot.telegram_user.api_hash_file (from my.telegram.org)")
    register_secrets(api_hash)
    session = session_path(cfg.state_dir())
    if not session.is_file() or session.stat().st_size == 0:
        raise ConfigError(f"bot.telegram_user is enabled but the account is not logged in ({session} is missing): "
                          "run `hux bot login` once")
    secure_session_file(session)  # a copied-in session keeps 0600 too

    def make() -> Any:
        # auto_reconnect: Telethon retries a dropped connection itself; the source reconnects when it gives up.
        return TelegramClient(str(session), user.api_id, api_hash, connection_retries=5, retry_delay=2,
                              auto_reconnect=True, flood_sleep_threshold=0)

    return make
