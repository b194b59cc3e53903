"""``python -m distributor``: the same CLI as the ``distributor`` command."""

from distributor.cli import app

app()
