"""Configuration: model profiles from models.ini, .env files, and settings with precedence
CLI > environment > INI > built-in default. The bottom layer: imports nothing else of tongyi_agent."""

from tongyi_agent.config.errors import ConfigError
from tongyi_agent.config.profiles import ModelProfile
from tongyi_agent.config.settings import Settings, load_settings, user_cache_dir, user_config_dir
from tongyi_agent.config.validate import CheckItem, validate_config

__all__ = [
    "CheckItem",
    "ConfigError",
    "ModelProfile",
    "Settings",
    "load_settings",
    "user_cache_dir",
    "user_config_dir",
    "validate_config",
]
