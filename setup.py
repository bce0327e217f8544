"""Packaging for kpose."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
version = {}
for line in (HERE / "kpose" / "__init__.py").read_text().splitlines():
    if line.startswith("__version__"):
        exec(line, version)

setup(
    name="kpose",
    version=version["__version__"],
    description="DeepPose, CPM, SimpleBaselines and Stacked Hourglass in Keras 3: train in "
                "Colab, export to TFLite, the Edge TPU and ONNX.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["kpose", "kpose.*", "export", "export.*"]),
    package_data={"kpose": ["weights/*.json", "weights/*.npz"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.3",
        "numpy>=1.26",
        "scipy>=1.11",
        "matplotlib>=3.8",
        "pillow>=10.0",
        "tensorboard>=2.16",
        "tf2onnx>=1.16",
        "onnxruntime>=1.17",
        "ai-edge-litert>=1.2",
        "pycocotools>=2.0.8",
    ],
    extras_require={
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        "dev": ["pytest>=8.0", "onnx>=1.16", "pytest-xdist>=3.6", "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29",
                "import-linter>=2.1",
                "mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=1.0"],
    },
    entry_points={"console_scripts": ["kpose=kpose.cli:main", "kpose-export=export.cli:main"]},
    license="Apache-2.0",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
