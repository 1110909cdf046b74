"""Errors that mean "bad input": the CLI prints their message as one line on stderr and exits 2."""


class BenchError(Exception):
    """Bad input from the user (a file, an option, a run directory). Message: one clear sentence."""


class DataError(BenchError):
    """A source file, prepared dataset or submission that cannot be used."""


class AdapterError(BenchError):
    """An unknown adapter, an invalid adapter option, or a corrupt/mismatched adapter file."""


class NonFiniteLoss(BenchError):
    """The training loss became NaN or infinite (the message names the step and the last good checkpoint)."""
