"""What an auditor runs: receipts and reads verified against the chain alone (core and
chain only)."""
