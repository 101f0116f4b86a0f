"""Showing results: the terminal (terminal), reports in HTML, Markdown, JSON and JUnit (report), plots."""
