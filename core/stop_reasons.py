"""Why a training run ended before its last epoch: the engine says it, the worker and
the diagnosis read it. Defined once here (no torch), so every side spells it the same."""

CANCELLED = "cancelled"
TIME_LIMIT = "time_limit"
SHUTDOWN = "shutdown"
DIVERGED = "diverged"
EARLY_STOPPED = "early_stopped"
