"""Datasets: what a run trains and tests on.

- ``base``: the interface (``Split``, ``Dataset``, ``DatasetSource``, ``build_dataset``);
- ``images``: the image datasets (``digits``, ``synthetic``, ``mnist``, ``fashion_mnist``,
  ``mnist_variant``), registered by name;
- ``variants``: the MNIST-derived variants of ``data=mnist_variant``;
- ``events``: event-camera and spike datasets through tonic (``nmnist``, ``dvs_gesture``, ``shd``);
- ``augment``: the training images' random shifts, turns and scalings.

Importing the package registers every dataset.
"""

from snnrun.data.base import Dataset, DatasetSource, Split, build_dataset, stratified_split
from snnrun.data import events, images  # noqa: F401  (register the datasets by name)

__all__ = ["Dataset", "DatasetSource", "Split", "build_dataset", "stratified_split"]
