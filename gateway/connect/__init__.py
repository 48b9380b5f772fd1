"""``claimx connect``: the institution-side agent that adapts, signs and publishes.

It runs at the hospital or police bureau, holds the institution's signing key, and reaches the
exchange over HTTP only (import-linter forbids it the gateway's store, services and API).
"""
