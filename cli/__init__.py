"""The isoinspect command line: parses arguments and calls the library."""
