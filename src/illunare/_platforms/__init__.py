"""Private helpers of the platform adapters (``illunare.kubernetes``, ``illunare.gcp``)."""
