"""Monitoring: data validation, drift statistics, metrics and alerts."""
