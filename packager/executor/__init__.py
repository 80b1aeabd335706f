"""The executor layer: the only code that reads the input, writes files or talks to Docker."""
