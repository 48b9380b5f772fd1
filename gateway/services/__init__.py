"""Business rules: publishing, anchoring, claims, requests, access, push; no web framework."""
