"""The exporter's one error type: its message is the single line the CLI prints."""


class ExportError(Exception):
    """An export that cannot go on; nothing has been published."""
