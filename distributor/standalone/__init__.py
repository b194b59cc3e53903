"""Standalone mode: the whole pipeline in one process, on SQLite, without Redis or Celery."""
