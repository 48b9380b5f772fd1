"""Push to members: webhook endpoints, the delivery worker and server-sent event streams."""
