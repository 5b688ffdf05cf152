"""Gradual rollouts, canaries and shadow runs: two versions of a release live at once."""
