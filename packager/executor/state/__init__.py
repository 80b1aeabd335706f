"""The output's state: who may write it, what the packager may replace, what it already read.

- lock.py: one run per output (an exclusive flock held for the whole run).
- ownership.py: the ownership marker; only directories the packager created are replaced,
  and inputs and outputs never overlap.
- digestcache.py: input digests cached by file identity, so a no-change run reads no weights.
"""
