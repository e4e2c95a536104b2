"""The fault tests share one worker (starting one costs seconds on a busy CI machine), so the media
folder, training folder and runtime config it was started with are the package's, and every test
starts with that media folder empty. The worker, and the web server of the outage tests, reach
PostgreSQL and Redis through TCP proxies the tests can cut; the tests' own process goes direct.
"""

import shutil
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings
from django.db import connection

from tests.faults.backends import Backends, redis_urls, uses_postgres
from tests.faults.proxy import TcpProxy
from tests.faults.workers import (
    LEGACY_BATCH,
    RUNTIME_CONFIG,
    WORKER_QUEUES,
    FaultDirs,
    Worker,
    forget_unacknowledged_messages,
)
from tests.processes import test_database_url as database_url_of_this_test


@pytest.fixture(scope="package")
def backends(django_db_setup):
    found = Backends(
        database_url=database_url_of_this_test(),
        broker_url=settings.CELERY_BROKER_URL,
        redis_url=settings.REDIS_URL,
    )
    if uses_postgres():
        host, port = connection.settings_dict["HOST"] or "127.0.0.1", int(connection.settings_dict["PORT"] or 5432)
        found.database_proxies = {role: TcpProxy(host, port).start() for role in ("web", "worker")}
    if urls := redis_urls():
        upstreams = {(urlsplit(url).hostname, urlsplit(url).port or 6379) for url in urls}
        assert len(upstreams) == 1, "broker and cache on two Redis servers: give each its own proxy"
        found.redis_proxy = TcpProxy(*upstreams.pop()).start()
    yield found
    for proxy in [*found.database_proxies.values(), found.redis_proxy]:
        if proxy is not None:
            proxy.stop()


@pytest.fixture(scope="package")
def fault_dirs(tmp_path_factory) -> FaultDirs:
    root = tmp_path_factory.mktemp("faults")
    dirs = FaultDirs(media=root / "media", training=root / "training", config=root / "runtime-config.yaml")
    dirs.media.mkdir()
    dirs.training.mkdir()
    dirs.config.write_text(yaml.safe_dump(RUNTIME_CONFIG), encoding="utf-8")
    return dirs


@pytest.fixture(scope="package")
def shared_worker(backends, fault_dirs):
    env = backends.env(fault_dirs, "worker", IMAGINEER_LEGACY_IMPORT_BATCH=str(LEGACY_BATCH))
    worker = Worker(env, queues=WORKER_QUEUES)
    worker.start(purge=True)
    yield worker
    worker.stop()
    forget_unacknowledged_messages()


@pytest.fixture
def worker(shared_worker):
    """The package's worker, started again if the test before killed it."""
    if not shared_worker.alive:
        shared_worker.start()
    return shared_worker


@pytest.fixture
def media_root(settings, fault_dirs):
    """Overrides the suite's per-test media folder with the package's, emptied first."""
    for child in fault_dirs.media.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    settings.MEDIA_ROOT = fault_dirs.media
    settings.IMAGINEER_TRAINING_DIR = fault_dirs.training
    yield fault_dirs.media


@pytest.fixture
def runtime_config_file(settings, fault_dirs):
    """Overrides the suite's per-test runtime config with the package's."""
    from imagineer.core.runtime_config import store

    settings.IMAGINEER_CONFIG = fault_dirs.config
    store.clear()
    yield fault_dirs.config
    store.clear()
