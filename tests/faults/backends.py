"""How the fault tests' worker and web processes reach PostgreSQL and Redis: directly, or through
TCP proxies the tests can cut."""

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from tests.faults.proxy import TcpProxy
from tests.faults.workers import FaultDirs, process_env


def uses_postgres() -> bool:
    return connection.vendor == "postgresql"


def redis_urls() -> list[str]:
    return [url for url in (settings.CELERY_BROKER_URL, settings.REDIS_URL) if url.startswith("redis://")]


@dataclass
class Backends:
    """What the worker and web processes are given to reach PostgreSQL and Redis, and the proxies between."""

    database_url: str
    broker_url: str
    redis_url: str
    database_proxies: dict[str, TcpProxy] = field(default_factory=dict)  # "web", "worker"
    redis_proxy: TcpProxy | None = None

    def env(self, dirs: FaultDirs, role: str, **extra: str) -> dict[str, str]:
        database_url = self.database_url
        if role in self.database_proxies:
            database_url = self.database_proxies[role].url(database_url)
        broker_url, redis_url = self.broker_url, self.redis_url
        if self.redis_proxy is not None:
            broker_url = self.redis_proxy.url(broker_url) if broker_url.startswith("redis://") else broker_url
            redis_url = self.redis_proxy.url(redis_url) if redis_url else redis_url
        return process_env(database_url=database_url, broker_url=broker_url, redis_url=redis_url, dirs=dirs, **extra)
