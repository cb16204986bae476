"""eBPF probes (BCC) and cgroupfs readers; knows nothing of our runtime."""
