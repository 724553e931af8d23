"""Which PostgreSQL and Redis to use: the configured URLs, else the embedded servers."""

from __future__ import annotations

from dataclasses import dataclass

from tickvault.config import Settings
from tickvault.storage.embedded import ensure_embedded


@dataclass(frozen=True, slots=True)
class StorageUrls:
    database_url: str
    redis_url: str
    embedded: tuple[str, ...]  # which of "postgres", "redis" are embedded


def resolve_urls(settings: Settings, *, need_redis: bool = True) -> StorageUrls:
    """A configured URL always wins; what is missing is served by an embedded server."""
    want_pg = settings.database_url is None
    want_redis = need_redis and settings.redis_url is None
    started = (
        ensure_embedded(settings.data_dir, postgres=want_pg, redis=want_redis)
        if want_pg or want_redis
        else {}
    )
    embedded = tuple(name for name, on in (("postgres", want_pg), ("redis", want_redis)) if on)
    return StorageUrls(
        database_url=settings.database_url or started["database_url"],
        redis_url=settings.redis_url or started.get("redis_url", ""),
        embedded=embedded,
    )
