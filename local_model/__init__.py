"""The local model: training, export, evaluation and the SageMaker-compatible inference server."""
