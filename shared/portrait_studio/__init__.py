"""Portrait Studio: the code every Lambda function shares (built as a layer)."""
