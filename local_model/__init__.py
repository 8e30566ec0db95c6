"""The local model: training, export, evaluation and the SageMaker-compatible inference server."""


class LocalModelError(Exception):
    """An error the user can act on (a missing model, a bad setting); its message says what to do.

    local_model imports nothing of scones: the CLI catches this base and prints it in one line.
    """
