"""Execution: the Celery worker that supervises trainers, and the trainer engine itself."""
