"""Self-contained HTML reports rendered from RunRecords."""
