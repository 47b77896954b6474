"""Stores: where passages, sentences, vectors and texts live (see base.py)."""
