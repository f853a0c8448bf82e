"""The command line: parse, call the library, render. Never imported by the library."""
