"""A local Centrapay API for demos, tests and benchmarks: strict like the real one, with
magic card numbers, a fast clock, injected faults, and a ledger of what it was asked.

Start it with ``running_sandbox(settings)`` (tests) or ``serve(settings)`` (foreground).
"""

from distributor.centrapay.sandbox.server import SandboxHandle, running_sandbox, serve

__all__ = ["SandboxHandle", "running_sandbox", "serve"]
