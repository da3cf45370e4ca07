"""A job's append-only event log: append (fenced), replay after a cursor, follow live."""
