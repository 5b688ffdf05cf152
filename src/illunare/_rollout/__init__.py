"""Gradual rollouts and shadow runs of a module's new version, inside the process."""
