"""Dataset upload parsing and storage."""
