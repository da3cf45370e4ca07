"""Side-by-side speed measurements; `make bench` runs them. Never timed assertions in tests."""
