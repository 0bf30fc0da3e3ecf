"""Tracker adapters (GitHub, GitLab, Jira) behind one narrow interface; retries live here only."""
