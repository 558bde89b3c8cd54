"""Offline evaluation: replay recorded traces through the Monitor and report."""
