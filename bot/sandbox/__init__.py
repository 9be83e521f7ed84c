"""Loopback stand-ins for Slack and Gemini, used by the tests and by ``python app.py sandbox``."""
