"""Partition management of the `messages` table (see services.py)."""
