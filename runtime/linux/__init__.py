"""Thin wrappers over Linux system calls that Python 3.11 does not expose."""
