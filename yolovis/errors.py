"""The one exception type users see: a one-line message that names the file and the problem."""


class UserError(Exception):
    """Bad input from the user (missing file, malformed JSON, wrong shapes, ...).

    The CLI prints `yolovis <command>: error: <message>` and exits with status 2, no traceback.
    """
