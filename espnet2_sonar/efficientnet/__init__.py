"""DECAR's log-mel EfficientNet: config, log-mel frontend, encoder, checkpoint file and interop."""
