"""The queue in SQL, one module per responsibility; ``dialer.sql_store.SqlStore`` composes
them. The statements are the same on SQLite and PostgreSQL (``?`` placeholders); the engine
(``dialer.sql.engine``) says how a transaction starts and how rows are locked."""
