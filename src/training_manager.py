"""The integration guide's import, `from training_manager import get_training_manager`.

The API lives in `tongyi_agent.training_manager`; this top-level module re-exports it, so the
guide's code runs unchanged. Both names refer to the same objects.
"""

from tongyi_agent.training_manager import (
    AGENT_TYPES,
    MODES,
    OptimizedAgent,
    TrainingManager,
    get_training_manager,
)

__all__ = ["AGENT_TYPES", "MODES", "OptimizedAgent", "TrainingManager", "get_training_manager"]
