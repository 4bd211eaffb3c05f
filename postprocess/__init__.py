"""Torch-free re-implementation of Ultralytics pre/postprocessing (NumPy, OpenCV for resizing).

Every function here mirrors one step of `YOLO(...).predict()` exactly; the tests compare against
Ultralytics itself. See `shared/reference/ultralytics-spec.md` for the rules.
"""
