"""Start-up benchmarks and limit verification against peer runtimes."""
