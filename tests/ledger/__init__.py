"""The disclosure ledger: Merkle trees, sequencing, reading, verifying (broker/ledger, web/ledger)."""
