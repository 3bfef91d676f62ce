"""Metrics per task type; each module turns model outputs and targets into a plain-JSON dict."""
