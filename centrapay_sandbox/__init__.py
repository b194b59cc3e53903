"""A local Centrapay API for demos, tests and benchmarks: strict like the real one, with
magic card numbers, a fast clock, injected faults, and a ledger of what it was asked.

Start it with ``running_sandbox(settings)`` (tests), ``serve(settings)`` (foreground) or
``python -m centrapay_sandbox``. It stands alone: nothing here imports the distributor, and
the Centrapay rules it enforces are its own copies of the documented ones.
"""

from centrapay_sandbox.config import SandboxSettings, get_sandbox_settings
from centrapay_sandbox.errors import ConfigError, SandboxError
from centrapay_sandbox.server import SandboxHandle, running_sandbox, serve

__all__ = [
    "ConfigError",
    "SandboxError",
    "SandboxHandle",
    "SandboxSettings",
    "get_sandbox_settings",
    "running_sandbox",
    "serve",
]
