"""Assertions shared by the CLI tests."""

from __future__ import annotations


def assert_user_error(result, *fragments: str) -> None:
    """A click result is one ``Error: ...`` line on stderr with exit code 2, no traceback,
    and the line contains every fragment."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
