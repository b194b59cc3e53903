"""Talking to Centrapay: the HTTP client, and the local sandbox API."""
