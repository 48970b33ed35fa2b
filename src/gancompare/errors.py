"""The one exception type for bad user input."""


class ConfigError(ValueError):
    """Bad input, reported as one line that names the config key and the fix (no traceback)."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key = key
        super().__init__(f"{key}: {problem}. Fix: {fix}")
