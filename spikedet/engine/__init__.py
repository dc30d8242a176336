"""High-level jobs behind the command-line tools: train, convert, evaluate."""
