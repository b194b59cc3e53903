"""The HTTP API: upload, batch and row queries, batch control, health."""
