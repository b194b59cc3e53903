"""Talking to Centrapay: the HTTP client (the local sandbox is ``centrapay_sandbox``)."""
