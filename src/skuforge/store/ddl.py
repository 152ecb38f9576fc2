"""The store's tables as SQLite DDL, so that opening the default store needs no SQLAlchemy (`store.sql`).

`store/schema.py` (SQLAlchemy Core) stays the one definition of the tables; `SQLITE_DDL` is what it compiles
to for SQLite, written out. A test compares the two: after changing schema.py, run
`python -m skuforge.store.ddl` and paste what it prints here.
"""

from __future__ import annotations


def generate() -> str:
    """The DDL that `store/schema.py` compiles to for SQLite (tables and indexes, IF NOT EXISTS)."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from skuforge.store.schema import metadata

    dialect = sqlite.dialect()
    statements = []
    for table in metadata.sorted_tables:
        statements.append(CreateTable(table, if_not_exists=True).compile(dialect=dialect))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
    lines = []
    for statement in statements:
        lines += [line.rstrip().replace("\t", "    ") for line in str(statement).strip().splitlines()]
        lines.append(";")
    return "\n".join(lines) + "\n"


SQLITE_DDL = """\
CREATE TABLE IF NOT EXISTS answers (
    job_id VARCHAR(40) NOT NULL,
    "key" VARCHAR(64) NOT NULL,
    row_id VARCHAR(200) NOT NULL,
    step VARCHAR(64) NOT NULL,
    variant VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL,
    output TEXT,
    error TEXT,
    findings TEXT,
    meta TEXT,
    updated_at FLOAT NOT NULL,
    PRIMARY KEY (job_id, "key")
)
;
CREATE TABLE IF NOT EXISTS items (
    job_id VARCHAR(40) NOT NULL,
    row_id VARCHAR(200) NOT NULL,
    step VARCHAR(64) NOT NULL,
    variant VARCHAR(64) NOT NULL,
    row_index INTEGER NOT NULL,
    "key" VARCHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL,
    output TEXT,
    error TEXT,
    findings TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cost FLOAT NOT NULL,
    attempts INTEGER NOT NULL,
    cached INTEGER NOT NULL,
    review VARCHAR(16),
    meta TEXT,
    updated_at FLOAT NOT NULL,
    PRIMARY KEY (job_id, row_id, step, variant)
)
;
CREATE INDEX IF NOT EXISTS ix_items_job_index ON items (job_id, row_index)
;
CREATE INDEX IF NOT EXISTS ix_items_job_key ON items (job_id, "key")
;
CREATE INDEX IF NOT EXISTS ix_items_job_status ON items (job_id, status)
;
CREATE TABLE IF NOT EXISTS jobs (
    id VARCHAR(40) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    state VARCHAR(16) NOT NULL,
    fingerprint VARCHAR(64) NOT NULL,
    catalog TEXT NOT NULL,
    recipe TEXT NOT NULL,
    recipe_fingerprint VARCHAR(64) NOT NULL,
    model TEXT NOT NULL,
    params TEXT NOT NULL,
    selection TEXT NOT NULL,
    settings TEXT NOT NULL,
    out TEXT,
    parent_id VARCHAR(40),
    error TEXT,
    totals TEXT NOT NULL,
    created_at FLOAT NOT NULL,
    updated_at FLOAT NOT NULL,
    PRIMARY KEY (id)
)
;
CREATE INDEX IF NOT EXISTS ix_jobs_fingerprint ON jobs (fingerprint)
;
CREATE TABLE IF NOT EXISTS ledgers (
    job_id VARCHAR(40) NOT NULL,
    spent FLOAT NOT NULL,
    uncertain FLOAT NOT NULL,
    held FLOAT NOT NULL,
    updated_at FLOAT NOT NULL,
    PRIMARY KEY (job_id)
)
;
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER NOT NULL,
    job_id VARCHAR(40) NOT NULL,
    row_id VARCHAR(200) NOT NULL,
    step VARCHAR(64) NOT NULL,
    variant VARCHAR(64) NOT NULL,
    action VARCHAR(16) NOT NULL,
    field TEXT,
    "before" TEXT,
    "after" TEXT,
    who TEXT NOT NULL,
    comment TEXT,
    at FLOAT NOT NULL,
    PRIMARY KEY (id)
)
;
CREATE INDEX IF NOT EXISTS ix_reviews_item ON reviews (job_id, row_id, step, variant)
;
CREATE TABLE IF NOT EXISTS schedules (
    id VARCHAR(40) NOT NULL,
    name TEXT NOT NULL,
    cron TEXT NOT NULL,
    spec TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    last_run_at FLOAT,
    last_job_id VARCHAR(40),
    created_at FLOAT NOT NULL,
    PRIMARY KEY (id)
)
;
CREATE TABLE IF NOT EXISTS skuforge_meta (
    "key" VARCHAR(64) NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY ("key")
)
;
"""


if __name__ == "__main__":
    print(f'SQLITE_DDL = """\\\n{generate()}"""')
