"""Subcommands of the ``anon-ros`` CLI, one module each (see anon_ros.cli)."""
