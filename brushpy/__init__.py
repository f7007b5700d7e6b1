"""brushpy: 3D Gaussian Splatting reconstruction in Python on WebGPU."""

__version__ = "0.1.0"
