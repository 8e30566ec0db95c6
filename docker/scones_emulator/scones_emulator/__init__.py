"""scones' LocalStack core plugins: a host-process Lambda executor and JSONata without Java."""
