"""The HTTP API: the FastAPI app, error handlers, typed dependencies, one router per area."""
