"""Reading a trained model: the artifact on disk (artifact.py: save, load, card), a text's
distribution (predict.py), files scored in bulk (scoring.py), explanations (explain.py), the
temperature and rating sets (calibration.py, conformal.py), the metrics (metrics.py) and the ONNX
export (onnx_export.py).

May import nn/, io/ and the settings; imported by training/, distillation/, the facade and the surfaces.
"""
