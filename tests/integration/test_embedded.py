from pathlib import Path

import psycopg
import redis

from tickvault.storage.embedded import ensure_embedded, stop_embedded


def test_embedded_servers_start_once_and_are_reused(tmp_path: Path) -> None:
    data_dir = Path("/tmp") / f"tv-embedded-{tmp_path.name}"
    try:
        urls = ensure_embedded(data_dir)
        with psycopg.connect(urls["database_url"]) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        assert redis.Redis.from_url(urls["redis_url"]).ping()
        again = ensure_embedded(data_dir)
        assert again == urls  # found running, not started twice
    finally:
        assert set(stop_embedded(data_dir)) == {"postgres", "redis"}
