"""Clients for the external APIs: one resilient HTTP core (``http``, with its limiter, breaker and
Retry-After parsing in ``resilience``) and one module per API."""

from hux.bot.clients.dexscreener import DexScreenerClient, PairInfo
from hux.bot.clients.http import ApiClient, ApiError, RequestContext
from hux.bot.clients.resilience import CircuitBreaker, RateLimiter
from hux.bot.clients.rugcheck import RiskReport, RugCheckClient
from hux.bot.clients.telegram import TelegramBotApi
from hux.bot.logsetup import redact  # the redaction the clients apply, for their callers

__all__ = [
    "ApiClient",
    "ApiError",
    "CircuitBreaker",
    "DexScreenerClient",
    "PairInfo",
    "RateLimiter",
    "RequestContext",
    "RiskReport",
    "RugCheckClient",
    "TelegramBotApi",
    "redact",
]
