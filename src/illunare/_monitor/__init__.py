"""Performance monitoring: windows of recent values per deployment, their summaries and health."""
