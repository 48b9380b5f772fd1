"""Persistence: every table, the database and its migrations, the Merkle log in the
database, the vault and member events."""
