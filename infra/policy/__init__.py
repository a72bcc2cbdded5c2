"""The health-data policy pack (see rules.py); `__main__.py` serves it to the Pulumi engine."""
