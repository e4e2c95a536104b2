"""The label-text tally: per text and scope, how many labels and how many of them on hidden images.

The per-text analytics (distinct texts, top tags and their total) read LabelTextTally instead of
grouping every label per request. It stays exact through every write path because the database
maintains it, not the ORM:

- Triggers append. On labeling_label every insert, delete and change of (text, type, image)
  appends ±1 rows to LabelTextDelta; on albums_image an image created hidden, turning hidden or
  visible (is_public, is_nsfw, nsfw_check), or deleted while hidden appends its id to
  LabelTallyImageChange. Append-only: no
  writer ever locks or waits on a shared tally row, so concurrent labeling workers cannot
  deadlock on hot tags, and bulk_create, queryset updates and deletes are all covered. On
  PostgreSQL the triggers are statement-level (one INSERT ... SELECT from the transition table
  per statement); on SQLite row-level.
- Compaction folds (`compact_label_tallies`, run by every tally read first). In one snapshot it
  takes the pending rows, counts each label delta as hidden or not by LabelTallyHiddenImage (the
  images the tally counted hidden so far), and for each changed image whose visibility now
  differs from that, moves its current labels between hidden and visible; then it updates
  LabelTallyHiddenImage and upserts the sums. Reading both sides in one snapshot is what makes
  a label written while its image changes visibility count right: a trigger that looked the
  image up itself would race with the flip (neither sees the other's uncommitted row).
  PostgreSQL: an advisory lock lets one compactor run at a time (it never blocks writers) and the
  fold is one statement; SQLite: the single writer lock.
- `rebuild_label_tallies` recomputes everything from the labels: the migration's backfill, and
  after `migrate` whenever a trigger is missing. SQLite drops a table's triggers when Django
  rebuilds the table (most AlterField/AddField there), so on SQLite post_migrate always
  reinstalls the triggers and rebuilds (O(labels), a second at the embedded deployment's size).

Scopes: each label type, ALL (every type: one row per distinct text) and TAGS (TAG_TYPES).
Hidden is "not (is_public and not is_nsfw and nsfw_check cleared)" (albums.models.public_images_q
in SQL); a non-admin's count is total - hidden.
Invariant relied on: text_key = SHA-256 of text (Label.save and every bulk_create set it).
Changing a trigger or the tables: a new migration that runs install_triggers() (CREATE OR REPLACE)
and, if the meaning of the counts changed, rebuild_label_tallies().
"""

from __future__ import annotations

from django.db import connections, transaction

from albums.models import CHECK_CLEARED
from labeling.models import TAG_TYPES, LabelTextTally

LABEL = "labeling_label"
IMAGE = "albums_image"
TALLY = "labeling_labeltexttally"
DELTA = "labeling_labeltextdelta"
CHANGE = "labeling_labeltallyimagechange"
HIDDEN = "labeling_labeltallyhiddenimage"

# pg_advisory_xact_lock key of the compactor ("label tally" in ASCII, as a bigint).
COMPACTION_LOCK = 0x6C_61_62_74_61_6C_6C_79

# albums.models.public_images_q, negated, in SQL: not public, NSFW, or not cleared by the NSFW check.
_CLEARED_SQL = ", ".join(f"'{value}'" for value in CHECK_CLEARED)
_HIDDEN_IMAGE = "NOT ({t}.is_public AND NOT {t}.is_nsfw AND {t}.nsfw_check IN (" + _CLEARED_SQL + "))"
_TAG_TYPES_SQL = ", ".join(f"'{value}'" for value in TAG_TYPES)


def _by_scope(contributions: str) -> str:
    """Sums of (text_key, label_type, text, d_total, d_hidden) rows per (text_key, scope), non-zero only."""
    return f"""
        SELECT c.text_key, CASE s.k WHEN 0 THEN c.label_type WHEN 1 THEN '{LabelTextTally.ALL}'
                                    ELSE '{LabelTextTally.TAGS}' END AS scope,
               MIN(c.text) AS text, SUM(c.d_total) AS total, SUM(c.d_hidden) AS hidden
        FROM (
            -- Per (text, type) first (a hash aggregate), so the fan-out to scopes sorts one row per key.
            SELECT text_key, label_type, MIN(text) AS text, SUM(d_total) AS d_total, SUM(d_hidden) AS d_hidden
            FROM ({contributions}) per_label GROUP BY text_key, label_type
        ) c
        JOIN (SELECT 0 AS k UNION ALL SELECT 1 UNION ALL SELECT 2) s
          ON s.k < 2 OR c.label_type IN ({_TAG_TYPES_SQL})
        GROUP BY 1, 2
        HAVING SUM(c.d_total) <> 0 OR SUM(c.d_hidden) <> 0
    """


# The pending deltas, counted hidden by the images the tally counted hidden so far, and the
# current labels of images whose visibility now differs from that, moved by ±1 hidden.
_CONTRIBUTIONS = """
    SELECT m.text_key, m.label_type, m.text, m.delta AS d_total,
           CASE WHEN h.image_id IS NULL THEN 0 ELSE m.delta END AS d_hidden
    FROM {moved} m LEFT JOIN {hidden} h ON h.image_id = m.image_id
    UNION ALL
    SELECT l.text_key, l.label_type, l.text, 0, CASE WHEN f.is_hidden THEN 1 ELSE -1 END
    FROM {flips} f JOIN {label} l ON l.image_id = f.image_id
    WHERE f.is_hidden <> f.was_hidden
"""

# Changed images: hidden as counted so far, and now (a deleted image is not hidden: it has no labels).
_FLIPS = f"""
    SELECT c.image_id, h.image_id IS NOT NULL AS was_hidden,
           COALESCE({_HIDDEN_IMAGE.format(t="i")}, FALSE) AS is_hidden
    FROM (SELECT DISTINCT image_id FROM {{changed}}) c
    LEFT JOIN {HIDDEN} h ON h.image_id = c.image_id
    LEFT JOIN {IMAGE} i ON i.id = c.image_id
"""

_UPSERT = f"""
    INSERT INTO {TALLY} (text_key, scope, text, total, hidden)
    SELECT text_key, scope, text, total, hidden FROM ({{rows}}) folded WHERE TRUE
    ORDER BY text_key, scope
    ON CONFLICT (text_key, scope) DO UPDATE
    SET total = {TALLY}.total + excluded.total, hidden = {TALLY}.hidden + excluded.hidden
"""

_PURGE = f"DELETE FROM {TALLY} WHERE total = 0"

_PG_FOLD = _UPSERT.format(
    rows=_by_scope(_CONTRIBUTIONS.format(moved="moved", hidden=HIDDEN, flips="flips", label=LABEL))
)
_PG_COMPACT = f"""
    WITH moved AS (
        DELETE FROM {DELTA} RETURNING text_key, label_type, text, image_id, delta
    ), changed AS (
        DELETE FROM {CHANGE} RETURNING image_id
    ), flips AS ({_FLIPS.format(changed="changed")}
    ), unhide AS (
        DELETE FROM {HIDDEN} WHERE image_id IN (SELECT image_id FROM flips WHERE was_hidden AND NOT is_hidden)
    ), hide AS (
        INSERT INTO {HIDDEN} (image_id) SELECT image_id FROM flips WHERE is_hidden AND NOT was_hidden
    )
    {_PG_FOLD}
"""

# SQLite: one writer at a time, so plain statements in one transaction see a fixed set of pending rows.
_SQLITE_COMPACT = [
    _UPSERT.format(
        rows=_by_scope(
            _CONTRIBUTIONS.format(moved=DELTA, hidden=HIDDEN, flips=f"({_FLIPS.format(changed=CHANGE)})", label=LABEL)
        )
    ),
    f"""DELETE FROM {HIDDEN} WHERE image_id IN (
            SELECT c.image_id FROM {CHANGE} c LEFT JOIN {IMAGE} i ON i.id = c.image_id
            WHERE i.id IS NULL OR NOT {_HIDDEN_IMAGE.format(t="i")})""",
    f"""INSERT INTO {HIDDEN} (image_id)
        SELECT DISTINCT c.image_id FROM {CHANGE} c JOIN {IMAGE} i ON i.id = c.image_id
        WHERE {_HIDDEN_IMAGE.format(t="i")}
        ON CONFLICT (image_id) DO NOTHING""",
    f"DELETE FROM {DELTA}",
    f"DELETE FROM {CHANGE}",
]

# Every label counted from scratch, hidden by its image's current visibility.
_FRESH = _by_scope(
    f"""SELECT l.text_key, l.label_type, l.text, 1 AS d_total,
               CASE WHEN {_HIDDEN_IMAGE.format(t="i")} THEN 1 ELSE 0 END AS d_hidden
        FROM {LABEL} l JOIN {IMAGE} i ON i.id = l.image_id"""
)
_HIDDEN_NOW = f"SELECT id FROM {IMAGE} i WHERE {_HIDDEN_IMAGE.format(t='i')}"

# PostgreSQL: one statement, so the labels counted and the pending rows dropped are the same
# snapshot; writers are not blocked (what they commit meanwhile stays pending, not counted twice).
_PG_REBUILD = f"""
    WITH dropped_deltas AS (DELETE FROM {DELTA}), dropped_changes AS (DELETE FROM {CHANGE}),
    hidden_now AS ({_HIDDEN_NOW}),
    unhide AS (DELETE FROM {HIDDEN} WHERE image_id NOT IN (SELECT id FROM hidden_now)),
    hide AS (INSERT INTO {HIDDEN} (image_id) SELECT id FROM hidden_now ON CONFLICT (image_id) DO NOTHING),
    fresh AS ({_FRESH}),
    stale AS (
        DELETE FROM {TALLY} t
        WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.text_key = t.text_key AND f.scope = t.scope)
    )
    INSERT INTO {TALLY} (text_key, scope, text, total, hidden)
    SELECT text_key, scope, text, total, hidden FROM fresh ORDER BY text_key, scope
    ON CONFLICT (text_key, scope) DO UPDATE SET total = excluded.total, hidden = excluded.hidden
"""

_SQLITE_REBUILD = [
    f"DELETE FROM {DELTA}",
    f"DELETE FROM {CHANGE}",
    f"DELETE FROM {HIDDEN}",
    f"DELETE FROM {TALLY}",
    f"INSERT INTO {HIDDEN} (image_id) {_HIDDEN_NOW}",
    f"INSERT INTO {TALLY} (text_key, scope, text, total, hidden) SELECT * FROM ({_FRESH}) fresh",
]

# --- triggers ---------------------------------------------------------------------------------

_LABEL_COLUMNS = "text_key, label_type, text, image_id"


def _pg_function(name: str, body: str) -> str:
    return f"""
        CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            {body};
            RETURN NULL;
        END
        $body$"""


# (trigger name, table, function body, trigger clause), statement-level over transition tables.
_PG_TRIGGERS = [
    (
        "labeling_tally_label_insert",
        LABEL,
        f"INSERT INTO {DELTA} ({_LABEL_COLUMNS}, delta) SELECT {_LABEL_COLUMNS}, 1 FROM new_rows",
        "AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
    ),
    (
        "labeling_tally_label_delete",
        LABEL,
        f"INSERT INTO {DELTA} ({_LABEL_COLUMNS}, delta) SELECT {_LABEL_COLUMNS}, -1 FROM old_rows",
        "AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT",
    ),
    (
        "labeling_tally_label_update",
        LABEL,
        # Only rows whose text, type or image changed: a run or user set to NULL moves nothing.
        f"""INSERT INTO {DELTA} ({_LABEL_COLUMNS}, delta)
            SELECT moved.* FROM old_rows o JOIN new_rows n ON n.id = o.id,
            LATERAL (VALUES (o.text_key, o.label_type, o.text, o.image_id, -1),
                            (n.text_key, n.label_type, n.text, n.image_id, 1)) AS moved
            WHERE (o.text_key, o.label_type, o.image_id) IS DISTINCT FROM (n.text_key, n.label_type, n.image_id)""",
        "AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT",
    ),
    (
        "labeling_tally_label_truncate",
        LABEL,
        f"DELETE FROM {DELTA}; DELETE FROM {TALLY}",
        "AFTER TRUNCATE ON {table} FOR EACH STATEMENT",
    ),
    (
        "labeling_tally_image_insert",
        IMAGE,
        f"INSERT INTO {CHANGE} (image_id) SELECT id FROM new_rows n WHERE {_HIDDEN_IMAGE.format(t='n')}",
        "AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
    ),
    (
        "labeling_tally_image_update",
        IMAGE,
        f"""INSERT INTO {CHANGE} (image_id)
            SELECT n.id FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE {_HIDDEN_IMAGE.format(t="o")} <> {_HIDDEN_IMAGE.format(t="n")}""",
        "AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT",
    ),
    (
        "labeling_tally_image_delete",
        IMAGE,
        f"INSERT INTO {CHANGE} (image_id) SELECT id FROM old_rows o WHERE {_HIDDEN_IMAGE.format(t='o')}",
        "AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT",
    ),
    (
        "labeling_tally_image_truncate",
        IMAGE,
        f"DELETE FROM {CHANGE}; DELETE FROM {HIDDEN}",
        "AFTER TRUNCATE ON {table} FOR EACH STATEMENT",
    ),
]

_SQLITE_LABEL_ROW = (
    "INSERT INTO "
    + DELTA
    + " ("
    + _LABEL_COLUMNS
    + ", delta) VALUES ({r}.text_key, {r}.label_type, {r}.text, {r}.image_id, {d})"
)
_SQLITE_TRIGGERS = [
    ("labeling_tally_label_insert", f"AFTER INSERT ON {LABEL} FOR EACH ROW", _SQLITE_LABEL_ROW.format(r="NEW", d=1)),
    ("labeling_tally_label_delete", f"AFTER DELETE ON {LABEL} FOR EACH ROW", _SQLITE_LABEL_ROW.format(r="OLD", d=-1)),
    (
        "labeling_tally_label_update",
        f"""AFTER UPDATE OF text_key, label_type, image_id ON {LABEL} FOR EACH ROW
            WHEN OLD.text_key IS NOT NEW.text_key OR OLD.label_type IS NOT NEW.label_type
              OR OLD.image_id IS NOT NEW.image_id""",
        _SQLITE_LABEL_ROW.format(r="OLD", d=-1) + "; " + _SQLITE_LABEL_ROW.format(r="NEW", d=1),
    ),
    (
        "labeling_tally_image_insert",
        f"AFTER INSERT ON {IMAGE} FOR EACH ROW WHEN {_HIDDEN_IMAGE.format(t='NEW')}",
        f"INSERT INTO {CHANGE} (image_id) VALUES (NEW.id)",
    ),
    (
        "labeling_tally_image_update",
        f"""AFTER UPDATE OF is_public, is_nsfw, nsfw_check ON {IMAGE} FOR EACH ROW
            WHEN {_HIDDEN_IMAGE.format(t="OLD")} IS NOT {_HIDDEN_IMAGE.format(t="NEW")}""",
        f"INSERT INTO {CHANGE} (image_id) VALUES (NEW.id)",
    ),
    (
        "labeling_tally_image_delete",
        f"AFTER DELETE ON {IMAGE} FOR EACH ROW WHEN {_HIDDEN_IMAGE.format(t='OLD')}",
        f"INSERT INTO {CHANGE} (image_id) VALUES (OLD.id)",
    ),
]

TRIGGER_NAMES = {
    "postgresql": [name for name, *_ in _PG_TRIGGERS],
    "sqlite": [name for name, *_ in _SQLITE_TRIGGERS],
}


def _run(cursor, statements: list[str]) -> None:
    for statement in statements:
        cursor.execute(statement)


def install_triggers(connection) -> None:
    """Create (or replace) the triggers that append to the delta tables. Idempotent."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for name, table, body, clause in _PG_TRIGGERS:
                cursor.execute(_pg_function(name, body))
                cursor.execute(
                    f"CREATE OR REPLACE TRIGGER {name} {clause.format(table=table)} EXECUTE FUNCTION {name}()"
                )
        elif connection.vendor == "sqlite":
            for name, clause, body in _SQLITE_TRIGGERS:
                cursor.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {clause} BEGIN {body}; END")
        else:
            raise NotImplementedError(f"No label tally triggers for {connection.vendor}.")


def drop_triggers(connection) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for name, table, _, _ in _PG_TRIGGERS:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
                cursor.execute(f"DROP FUNCTION IF EXISTS {name}()")
        else:
            for name, *_ in _SQLITE_TRIGGERS:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")


def missing_triggers(connection) -> set[str]:
    expected = TRIGGER_NAMES[connection.vendor]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname = ANY(%s)", [expected])
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name IN "
                f"({', '.join(['%s'] * len(expected))})",
                expected,
            )
        return set(expected) - {name for (name,) in cursor.fetchall()}


# --- compaction and rebuild -------------------------------------------------------------------


def compact_label_tallies(using: str = "default") -> None:
    """Fold the pending deltas into LabelTextTally: a fixed number of statements, cost proportional to
    what is pending (usually a few rows). Safe beside concurrent writers and other compactors."""
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Before the fold's statement, so its snapshot includes every earlier compaction.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [COMPACTION_LOCK])
            cursor.execute(_PG_COMPACT)
        else:
            _run(cursor, _SQLITE_COMPACT)
        cursor.execute(_PURGE)


def rebuild_label_tallies(using: str = "default") -> None:
    """Recount LabelTextTally from the labels and images, dropping whatever was pending."""
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [COMPACTION_LOCK])
            cursor.execute(_PG_REBUILD)
        else:
            _run(cursor, _SQLITE_REBUILD)


def sync_after_migrate(using: str) -> None:
    """post_migrate: make sure the triggers exist; when one was missing, the tally may have missed
    writes, so recount it. On SQLite always (its table rebuilds drop triggers, and flush deletes
    the tables in no particular order, which leaves stray deltas)."""
    connection = connections[using]
    if connection.vendor not in TRIGGER_NAMES:
        return
    tables = set(connection.introspection.table_names())
    if not {LABEL, IMAGE, TALLY, DELTA, CHANGE, HIDDEN} <= tables:
        return  # migrated backwards past the tally, or not yet forwards
    if connection.vendor == "sqlite" or missing_triggers(connection):
        install_triggers(connection)
        rebuild_label_tallies(using)
