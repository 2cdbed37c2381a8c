"""Taking results home: a trained network exported for use elsewhere (network.py: ONNX or
TorchScript in a zip with a model card and a predict.py), a run or a sweep as one HTML file
that opens offline (report.py), addresses that reopen a view of the dashboard (links.py), and
runs' curves as TensorBoard event files (tensorboard.py)."""
