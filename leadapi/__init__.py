"""The lead API."""
