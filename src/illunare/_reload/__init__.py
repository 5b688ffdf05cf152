"""Hot code swapping: versioned modules, stable proxies, instant rollback."""
