"""Formats, proofs and signatures: pure code with no database, chain, web framework or
HTTP client (import-linter checks it)."""
