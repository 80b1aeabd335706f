"""The executor layer: the only code that reads the input, writes files, runs processes or
talks to an image engine. `images/` holds the engines, `runs/` the runs of user code and
downloads (train, setup), `state/` the output's state (lock, ownership, digest cache)."""
