"""Learning code: the only place that imports torch, torchvision, lightning and onnx."""
