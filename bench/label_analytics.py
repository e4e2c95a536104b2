"""Benchmark: the label analytics endpoints on 1,000,000 labels over 100,000 images (PostgreSQL).

Baseline, measured in the same run on the same data: `SELECT count(*) FROM labeling_label`, a full
scan of the label table, the least any "over all labels" figure can cost. Each endpoint is timed
through the API in process (APIClient: routing, token auth, query-parameter validation, JSON), as
an admin and as an anonymous caller, and reported in ms and as a ratio to that baseline. The query
count of each call is measured at 10,000 labels and again at 1,000,000: it must be the same.

The per-text figures come from the label-text tally (labeling/tally.py), which triggers keep up on
every write; its costs are measured too: the first compaction after seeding (1M pending deltas),
and writes with the triggers against the same writes with them disabled (each in a transaction
that is rolled back, so the timed reads above are not affected).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/imagineer_bench .venv/bin/python bench/label_analytics.py

The database named in DATABASE_URL is dropped and created again (its name must contain "bench"),
migrated, and seeded with INSERT ... SELECT FROM generate_series; never part of the test suite.
Options: --images 100000 --labels 1000000 --rounds 9.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/imagineer_bench"
VOCABULARY = 2000
TAG_SLOTS = 15  # an image has 0..14 tags (mean 7): with captions, manual and scrape labels, up to ~21

ADJECTIVES = (
    "red blue green golden silver dark bright misty ancient modern tiny giant quiet stormy sunny snowy "
    "wooden glass neon pastel rusty frozen burning floating hidden lonely crowded empty wild calm "
    "sacred broken shiny dusty velvet marble crystal paper iron painted glowing faded vivid gloomy "
    "dreamy surreal cosmic urban rural tropical arctic desert"
).split()
NOUNS = (
    "cat dog castle forest river mountain city street portrait landscape ocean sky tree flower "
    "robot dragon knight ship train car bridge tower garden temple village cloud moon sun star "
    "lake beach road window door staircase lantern mask crown sword book clock mirror"
).split()


def _vocabulary() -> list[str]:
    phrases = [f"{adjective} {noun}" for adjective in ADJECTIVES for noun in NOUNS]
    assert len(phrases) >= VOCABULARY, len(phrases)
    return phrases[:VOCABULARY]


def _bands() -> list[tuple[int, int, int]]:
    """(slot, first rank, width): slot j of an image draws its tag from band j of the vocabulary.

    Bands grow geometrically, so the first slots (which every tagged image has) share a few very
    common tags and the last ones spread over many rare ones: a skewed, Zipf-like distribution.
    Different slots never share a rank, so an image never gets the same tag twice.
    """
    widths = [10 * 1.38**j for j in range(TAG_SLOTS - 1)]
    scale = VOCABULARY / sum(widths)
    bands, first = [], 0
    for j, width in enumerate(widths):
        size = max(1, round(width * scale)) if j < TAG_SLOTS - 2 else VOCABULARY - first
        bands.append((j, first, size))
        first += size
    return bands


def database_url(url: str) -> str:
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit(
            "This benchmark runs on PostgreSQL only (DATABASE_URL=postgres://...); SQLite is not what it measures."
        )
    name = urlsplit(url).path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"Refusing to drop database {name!r}: its name must contain 'bench'.")
    return url


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def seed(images: int, labels: int) -> dict[str, float]:
    """Fill the (migrated, empty) database; return how long each step took."""
    from django.db import connection

    from labeling.tally import compact_label_tallies, rebuild_label_tallies

    albums = max(10, images // 100)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE labeling_label, labeling_labelerresult, albums_albumimage, albums_album, albums_image CASCADE"
        )
        cur.execute("DROP TABLE IF EXISTS bench_vocab, bench_band")
        cur.execute("CREATE TEMP TABLE bench_vocab (rank int PRIMARY KEY, text text NOT NULL)")
        cur.executemany("INSERT INTO bench_vocab VALUES (%s, %s)", list(enumerate(_vocabulary())))
        cur.execute("CREATE TEMP TABLE bench_band (j int PRIMARY KEY, lo int NOT NULL, width int NOT NULL)")
        cur.executemany("INSERT INTO bench_band VALUES (%s, %s, %s)", _bands())
        # ~5 % NSFW, ~10 % private (some both), spread over the ids.
        cur.execute(
            """
            INSERT INTO albums_image (id, file, thumbnail, sha256, width, height, format, file_size,
                original_filename, prompt, negative_prompt, model, loras, is_nsfw, nsfw_flag_source,
                nsfw_rating, is_public, source, created_at, updated_at)
            SELECT g, 'bench/' || g || '.png', '', encode(sha256(('bench-image-' || g)::bytea), 'hex'),
                512, 512, 'PNG', 100000, '', 'a prompt', '', '', '[]', g %% 20 = 7, '', '', g %% 10 <> 3,
                'generated', now() - g * interval '1 minute', now()
            FROM generate_series(1, %s) g
            """,
            [images],
        )
        cur.execute(
            """
            INSERT INTO albums_album (id, name, slug, description, album_type, is_public, source_type,
                is_set_template, template_items, base_prompt, prompt_template, style_suffix,
                example_theme, negative_prompt, loras, created_at, updated_at)
            SELECT g, 'Album ' || g, 'bench-album-' || g, '', 'manual', g %% 10 <> 0, 'manual',
                false, '[]', '', '', '', '', '', '[]', now(), now()
            FROM generate_series(1, %s) g
            """,
            [albums],
        )
        cur.execute(
            """
            INSERT INTO albums_albumimage (album_id, image_id, sort_order, created_at)
            SELECT 1 + (g - 1) %% %s, g, g, now() FROM generate_series(1, %s) g
            """,
            [albums, images],
        )
        timings["images, albums"] = time.perf_counter() - started

        started = time.perf_counter()
        text_key = "encode(sha256(convert_to({}, 'UTF8')), 'hex')"
        # Machine tags (~70 %): image i has (i * 7919) % 15 of them, one from each of its first bands.
        cur.execute(
            f"""
            INSERT INTO labeling_label (image_id, text, text_key, label_type, confidence, source,
                source_model, created_at)
            SELECT i.g, v.text, {text_key.format("v.text")}, 'tag', 0.9, 'claude', 'bench',
                now() - ((i.g * 13 + b.j) %% 90) * interval '1 day'
            FROM generate_series(1, %s) i(g)
            JOIN bench_band b ON b.j < (i.g * 7919) %% {TAG_SLOTS}
            JOIN bench_vocab v ON v.rank = b.lo + (i.g * 2654435761 + b.j * 40503) %% b.width
            """,
            [images],
        )
        # Captions (~10 %): 90 % of images one, 10 % a second one.
        cur.execute(
            f"""
            INSERT INTO labeling_label (image_id, text, text_key, label_type, confidence, source,
                source_model, created_at)
            SELECT i.g, t.text, {text_key.format("t.text")}, 'caption', NULL, 'claude', 'bench', now()
            FROM generate_series(1, %s) i(g),
            LATERAL (SELECT n, 'A ' || v.text || ' under a ' || w.text || ' sky, seen from afar, number '
                                 || i.g || '-' || n AS text
                     FROM generate_series(1, CASE WHEN i.g %% 10 = 1 THEN 2 ELSE 1 END) n
                     JOIN bench_vocab v ON v.rank = (i.g + n) %% {VOCABULARY}
                     JOIN bench_vocab w ON w.rank = (i.g * 3 + n) %% {VOCABULARY}) t
            WHERE i.g %% 10 <> 0
            """,
            [images],
        )
        # A person's labels (~10 %, type manual, counted as tags): every other image two of them.
        cur.execute(
            f"""
            INSERT INTO labeling_label (image_id, text, text_key, label_type, confidence, source,
                source_model, created_at)
            SELECT i.g, v.text, {text_key.format("v.text")}, 'manual', NULL, 'manual', '', now()
            FROM generate_series(2, %s, 2) i(g)
            JOIN generate_series(0, 1) n ON true
            JOIN bench_vocab v ON v.rank = (n * 1000 + (i.g * 31) %% 1000)
            """,
            [images],
        )
        # Scrape types fill up to the requested total, spread over the images in turn.
        cur.execute("SELECT count(*) FROM labeling_label")
        missing = max(0, labels - cur.fetchone()[0])
        cur.execute(
            f"""
            INSERT INTO labeling_label (image_id, text, text_key, label_type, confidence, source,
                source_model, created_at)
            SELECT 1 + g %% %s, s.text, {text_key.format("s.text")}, s.kind, NULL, 'html_metadata', '', now()
            FROM generate_series(0, %s - 1) g,
            LATERAL (SELECT (ARRAY['alt_text', 'title', 'html_caption'])[1 + g %% 3] AS kind,
                            'scraped text ' || g AS text) s
            """,
            [images, missing],
        )
        cur.execute(
            """
            INSERT INTO labeling_labelerresult (image_id, labeler, source_model, nsfw_rating, confidence, labeled_at)
            SELECT g, 'claude', 'bench', CASE WHEN g %% 20 = 7 THEN 'ADULT' ELSE 'SAFE' END, 0.9,
                now() - (g %% 90) * interval '1 day'
            FROM generate_series(1, %s, 2) g
            """,
            [images],
        )
        for table in ("albums_image", "albums_album", "albums_albumimage", "labeling_label"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        timings["labels"] = time.perf_counter() - started
        started = time.perf_counter()
        compact_label_tallies()  # what the first analytics read would otherwise do
        timings["first tally compaction"] = time.perf_counter() - started
        started = time.perf_counter()
        rebuild_label_tallies()  # what the migration's backfill does on an existing database
        timings["tally rebuild"] = time.perf_counter() - started
        started = time.perf_counter()
        cur.execute("VACUUM ANALYZE")
        timings["vacuum analyze"] = time.perf_counter() - started
    return timings


def endpoints(album_id: int) -> list[tuple[str, str, bool]]:
    """(name, url, admin only)."""
    return [
        ("album analytics", f"/api/albums/{album_id}/labeling/analytics", True),
        ("labels/stats", "/api/labels/stats", False),
        ("labels/stats?label_type=tag", "/api/labels/stats?label_type=tag", False),
        ("labels/top-tags", "/api/labels/top-tags", False),
        ("labels/top-tags?offset=100&limit=100", "/api/labels/top-tags?offset=100&limit=100", False),
        ("labels/distribution", "/api/labels/distribution", False),
        (f"labels/distribution?album={album_id}", f"/api/labels/distribution?album={album_id}", False),
    ]


def query_counts(clients: dict, album_id: int) -> dict[tuple[str, str], int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = {}
    for name, url, admin_only in endpoints(album_id):
        for who, client in clients.items():
            if admin_only and who != "admin":
                continue
            with CaptureQueriesContext(connection) as captured:
                response = client.get(url)
            assert response.status_code == 200, (url, response.status_code, response.content[:300])
            counts[(name, who)] = len(captured)
    return counts


def baseline_ms() -> float:
    from django.db import connection

    with connection.cursor() as cur:
        started = time.perf_counter()
        cur.execute("SELECT count(*) FROM labeling_label")
        cur.fetchone()
        return (time.perf_counter() - started) * 1000


def _insert_select(images: int, count: int) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO labeling_label (image_id, text, text_key, label_type, confidence, source,
                source_model, created_at)
            SELECT 1 + g %% %s, 'bench write ' || (g %% 5000),
                encode(sha256(convert_to('bench write ' || (g %% 5000), 'UTF8')), 'hex'), 'tag', 0.9,
                'claude', 'bench', now()
            FROM generate_series(0, %s - 1) g
            """,
            [images, count],
        )


def _worker_batches(images: int, batches: int) -> None:
    """What a labeling worker does per image: one bulk_create of its ~10 tags."""
    from labeling.models import Label, LabelSource, LabelType, label_text_key

    for n in range(batches):
        texts = [f"bench worker tag {(n + k) % 500}" for k in range(10)]
        Label.objects.bulk_create(
            Label(
                image_id=1 + (n * 7919) % images,
                text=text,
                text_key=label_text_key(text),
                label_type=LabelType.TAG,
                source=LabelSource.CLAUDE,
            )
            for text in texts
        )


def write_cost(images: int, rounds: int = 3) -> list[tuple[str, float, float, float]]:
    """(what, median s without the triggers, with them, compacting what they appended)."""
    from django.db import connection, transaction

    from labeling.tally import compact_label_tallies

    writes = [
        ("INSERT ... SELECT of 100,000 labels (one statement)", lambda: _insert_select(images, 100_000)),
        ("1,000 bulk_create of 10 labels each (a labeling worker's pattern)", lambda: _worker_batches(images, 1_000)),
    ]
    results = []
    for name, write in writes:
        samples: dict[str, list[float]] = {"off": [], "on": [], "compact": []}
        for _ in range(rounds):
            for triggers in (False, True):
                with transaction.atomic():
                    if not triggers:
                        with connection.cursor() as cur:
                            cur.execute("ALTER TABLE labeling_label DISABLE TRIGGER USER")
                    started = time.perf_counter()
                    write()
                    samples["on" if triggers else "off"].append(time.perf_counter() - started)
                    if triggers:
                        started = time.perf_counter()
                        compact_label_tallies()
                        samples["compact"].append(time.perf_counter() - started)
                    transaction.set_rollback(True)
        results.append((name, *(statistics.median(samples[k]) for k in ("off", "on", "compact"))))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    url = database_url(os.environ.get("DATABASE_URL", DEFAULT_URL))
    recreate_database(url)
    os.environ.update(
        {
            "DATABASE_URL": url,
            "IMAGINEER_DATA_DIR": tempfile.mkdtemp(prefix="imagineer-bench-"),
            "DJANGO_SETTINGS_MODULE": "imagineer.settings",
            "DEBUG": "false",  # no per-query logging in the timed calls
            "LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from imagineer.core.models import User

    call_command("migrate", verbosity=0)
    admin = User.objects.create_superuser("bench", "", "bench")
    admin_client = APIClient()
    admin_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin).key}")
    clients = {"admin": admin_client, "anonymous": APIClient()}
    album_id = 2  # a public album of 100 images (album 10, 20, ... are private)

    small_images = max(1, args.images // 100)
    seed(small_images, args.labels // 100)
    small_counts = query_counts(clients, album_id)

    seeded = seed(args.images, args.labels)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT image_id) FROM labeling_label")
        label_count, labeled_images = cur.fetchone()
        cur.execute("SELECT label_type, count(*) FROM labeling_label GROUP BY 1 ORDER BY 2 DESC")
        mix = ", ".join(f"{kind} {n / label_count:.0%}" for kind, n in cur.fetchall())
        cur.execute("SELECT count(*) FILTER (WHERE is_nsfw), count(*) FILTER (WHERE NOT is_public) FROM albums_image")
        nsfw, private = cur.fetchone()
        cur.execute("SELECT version()")
        version = cur.fetchone()[0].split(" on ")[0]
    big_counts = query_counts(clients, album_id)

    for _ in range(3):  # warm caches: every figure below is a warm figure
        baseline_ms()
        for _name, url, admin_only in endpoints(album_id):
            for who, client in clients.items():
                if not (admin_only and who != "admin"):
                    client.get(url)

    timings: dict[tuple[str, str], list[float]] = {}
    baselines: list[float] = []
    for _ in range(args.rounds):
        baselines.append(baseline_ms())  # interleaved, so the ratio survives this machine's drift
        for name, url, admin_only in endpoints(album_id):
            for who, client in clients.items():
                if admin_only and who != "admin":
                    continue
                started = time.perf_counter()
                response = client.get(url)
                timings.setdefault((name, who), []).append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]

    base = statistics.median(baselines)
    print(f"{version}; {label_count:,} labels ({mix}) on {labeled_images:,} of {args.images:,} images")
    print(f"{nsfw:,} NSFW and {private:,} private images; {max(10, args.images // 100):,} albums")
    print("seeding: " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in seeded.items()))
    print(f"median of {args.rounds} warm rounds; baseline `SELECT count(*) FROM labeling_label`: {base:.1f} ms\n")
    print("| endpoint | caller | median ms | p95 ms | vs baseline | queries (10k / 1M labels) |")
    print("|---|---|---:|---:|---:|---:|")
    print(f"| baseline: `SELECT count(*) FROM labeling_label` | - | {base:.1f} | {p95(baselines):.1f} | 1.00x | 1 |")
    for (name, who), values in timings.items():
        median = statistics.median(values)
        small, big = small_counts[(name, who)], big_counts[(name, who)]
        same = "" if small == big else " **differs**"
        print(f"| `{name}` | {who} | {median:.1f} | {p95(values):.1f} | {median / base:.2f}x | {small} / {big}{same} |")

    print(f"\nwrite side (median of 3, rolled back): {label_count:,} labels already in the table\n")
    print("| write | triggers off s | triggers on s | on / off | compacting it s |")
    print("|---|---:|---:|---:|---:|")
    for name, off, on, compact in write_cost(args.images):
        print(f"| {name} | {off:.2f} | {on:.2f} | {on / off:.2f}x | {compact:.2f} |")
    if small_counts != big_counts:
        sys.exit("Query counts grew with the data.")


if __name__ == "__main__":
    main()
