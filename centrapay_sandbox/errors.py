"""The sandbox's own errors (it imports nothing from the distributor)."""

from __future__ import annotations


class SandboxError(Exception):
    """Base of every error the sandbox raises to its caller."""


class ConfigError(SandboxError):
    """A setting, the API keys or the card catalogue is invalid; the message names it."""
