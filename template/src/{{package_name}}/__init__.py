"""Prefect flows and their deployment helpers."""
