"""The `banwatch` command line: `main` parses, each command lives where its work is."""

from streams.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
