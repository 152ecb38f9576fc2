"""Tables of the job store, in SQLAlchemy Core so one schema serves SQLite and PostgreSQL.

JSON values are stored as text (orjson) so both databases read them the same way. The store opens a SQLite
file from this schema compiled to DDL (`store/ddl.py`) and keeps its version (`SCHEMA_VERSION`) beside its
statements in `store/database.py`.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

meta = Table(
    "skuforge_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(16), nullable=False),  # run | trial | images
    Column("state", String(16), nullable=False),  # draft trial queued running paused done failed cancelled
    Column("fingerprint", String(64), nullable=False, index=True),
    Column("catalog", Text, nullable=False),
    Column("recipe", Text, nullable=False),
    Column("recipe_fingerprint", String(64), nullable=False, default=""),
    Column("model", Text, nullable=False, default=""),
    Column("params", Text, nullable=False, default="{}"),
    Column("selection", Text, nullable=False, default="{}"),
    Column("settings", Text, nullable=False, default="{}"),
    Column("out", Text),
    Column("parent_id", String(40)),
    Column("error", Text),
    Column("totals", Text, nullable=False, default="{}"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

items = Table(
    "items",
    metadata,
    Column("job_id", String(40), primary_key=True),
    Column("row_id", String(200), primary_key=True),
    Column("step", String(64), primary_key=True),
    Column("variant", String(64), primary_key=True),
    Column("row_index", Integer, nullable=False),
    Column("key", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # done | flagged | failed | skipped
    Column("output", Text),
    Column("error", Text),
    Column("findings", Text),
    Column("input_tokens", Integer, nullable=False, default=0),
    Column("output_tokens", Integer, nullable=False, default=0),
    Column("cached_tokens", Integer, nullable=False, default=0),
    Column("cost", Float, nullable=False, default=0.0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("cached", Integer, nullable=False, default=0),
    Column("review", String(16)),  # None | pending | approved | rejected | edited
    Column("meta", Text),  # extra JSON: sources used, timing
    Column("updated_at", Float, nullable=False),
    Index("ix_items_job_index", "job_id", "row_index"),
    Index("ix_items_job_status", "job_id", "status"),
    Index("ix_items_job_key", "job_id", "key"),
)

answers = Table(
    "answers",
    metadata,
    # Every finished answer of a job, by item key: the work a rerun reuses, whatever row it now belongs to.
    # Items are one per (row, step, variant) and are replaced when a row changes; answers are never lost.
    Column("job_id", String(40), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("row_id", String(200), nullable=False),  # the row it was first answered for
    Column("step", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # done | flagged | skipped
    Column("output", Text),
    Column("error", Text),
    Column("findings", Text),
    Column("meta", Text),
    Column("updated_at", Float, nullable=False),
)

ledgers = Table(
    "ledgers",
    metadata,
    Column("job_id", String(40), primary_key=True),
    Column(
        "spent", Float, nullable=False, default=0.0
    ),  # what answers cost, every run and executor of the job
    Column(
        "uncertain", Float, nullable=False, default=0.0
    ),  # maybe charged, never answered (timeouts, kills)
    Column(
        "held", Float, nullable=False, default=0.0
    ),  # reserved by the run in progress, durable before sending
    Column("updated_at", Float, nullable=False),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(40), nullable=False),
    Column("row_id", String(200), nullable=False),
    Column("step", String(64), nullable=False),
    Column("variant", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # approve | reject | edit | rollback
    Column("field", Text),
    Column("before", Text),
    Column("after", Text),
    Column("who", Text, nullable=False),
    Column("comment", Text),
    Column("at", Float, nullable=False),
    Index("ix_reviews_item", "job_id", "row_id", "step", "variant"),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", Text, nullable=False),
    Column("cron", Text, nullable=False),
    Column("spec", Text, nullable=False),  # JSON: catalog, recipe, model, params, selection, settings
    Column("enabled", Integer, nullable=False, default=1),
    Column("last_run_at", Float),
    Column("last_job_id", String(40)),
    Column("created_at", Float, nullable=False),
)
