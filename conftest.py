"""Loads certaudit's pytest plugin; nothing else belongs here."""

pytest_plugins = ["certaudit.plugin"]
