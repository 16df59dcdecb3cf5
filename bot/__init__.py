"""The Slack app and the service around it."""
