"""Services that make demo plugs into the running process (see reports.py)."""
