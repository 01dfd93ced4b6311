"""Event schema package: the Arrow schema is the single source of truth (see `schemas.events`)."""
from schemas.events import (  # noqa: F401
    FILE_COLUMNS,
    FILE_SCHEMA,
    PARTITION_COLUMNS,
    PARTITION_SCHEMA,
    REQUIRED_COLUMNS,
    ROW_COLUMNS,
    Row,
    TABLE_SCHEMA,
    TIMESTAMP_COLUMNS,
    bigquery_schema,
    external_table_ddl,
)
