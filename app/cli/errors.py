"""What a `taas` command failure is: a sentence for the user, not a traceback."""


class CliError(Exception):
    """A failure the user can act on; `main` prints its text (one or two lines) and exits 1."""
