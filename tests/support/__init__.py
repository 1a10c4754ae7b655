"""Helpers shared by the test packages (one definition each; import them from here)."""
