"""What turns a sample into model inputs: SAOT geometry (object tokens) and chat rendering (text tokens)."""
