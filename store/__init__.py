"""The stores: one schema in one database (SQLite or PostgreSQL) for keys, tokens, audit, usage
and deployments. Imports the vocabulary (`core`) only, never the web layer."""
