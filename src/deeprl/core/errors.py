class ConfigError(ValueError):
    """A bad configuration value. The message is one line naming the key and the fix."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")
