"""The row pipeline: claim, load, transfer, recover; batch control; the sweeper."""
