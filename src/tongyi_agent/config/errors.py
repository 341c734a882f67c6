"""The one exception the config layer raises."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration problem the user can fix; ``str(err)`` is one line naming where it is."""
