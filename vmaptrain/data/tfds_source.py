"""TensorFlow Datasets sources. tensorflow and tensorflow_datasets are imported only here,
only when a tfds dataset is asked for, so the rest of vmaptrain runs without them.

Offline use: with `manual_dir`, tfds looks there for the dataset's original download files
(e.g. cifar-10-binary.tar.gz, or the four MNIST .gz files) and prepares the dataset into
`data_dir` without network access. tfds still checks those files against the checksums it
ships; a file that differs (e.g. a re-compressed copy) is refused. Checksums are never
re-registered, because tfds would write them into its own installed package. For such
copies use the local sources (idx:DIR, cifar:DIR, folder:DIR) instead.

Splits are read as a stream of large batches and concatenated, rather than with
`batch_size=-1`: that path asks tf.data for one batch of the split's recorded size, and under
`tfds.testing.mock_data` (no recorded size) tfds substitutes sys.maxsize, which aborts the
process inside TensorFlow.
"""

import numpy as np

from vmaptrain.data import stats
from vmaptrain.data.dataset import Dataset, build_dataset
from vmaptrain.data.errors import DataError

# The bare names load_dataset sends here; any other tfds dataset is reachable as tfds:NAME.
KNOWN_TFDS_NAMES = ("cifar10", "cifar100", "mnist", "fashion_mnist", "svhn_cropped")
PUBLISHED_CONSTANTS = {"cifar10": (stats.CIFAR10_MEAN, stats.CIFAR10_STD)}
_READ_BATCH = 10_000
_INSTALL_HINT = (
    "pip install tensorflow-cpu tensorflow-datasets, or use a local source (idx:DIR, cifar:DIR, npz:FILE, folder:DIR)"
)


def _import_tfds():
    try:
        import tensorflow as tf
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DataError(f"tfds datasets need tensorflow and tensorflow-datasets ({err}); {_INSTALL_HINT}") from None
    try:
        # TF would otherwise reserve GPU memory that JAX needs.
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass  # TF was already initialised by the caller; its device choice stands
    return tf, tfds


def _to_numpy(tfds, dataset) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for batch_images, batch_labels in tfds.as_numpy(dataset.batch(_READ_BATCH)):
        images.append(batch_images)
        labels.append(batch_labels)
    if not images:
        return np.zeros((0, 1, 1, 1), np.uint8), np.zeros((0,), np.int64)
    return np.concatenate(images), np.concatenate(labels)


def load_tfds_dataset(name: str, tfds_name: str, data_dir: str | None, manual_dir: str | None) -> Dataset:
    _, tfds = _import_tfds()
    prepare_kwargs = {}
    if manual_dir is not None:
        prepare_kwargs["download_config"] = tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
    try:
        (train, test), info = tfds.load(
            tfds_name,
            split=["train", "test"],
            as_supervised=True,
            with_info=True,
            shuffle_files=False,
            data_dir=data_dir,
            download_and_prepare_kwargs=prepare_kwargs,
        )
    except tfds.core.registered.DatasetNotFoundError:
        raise DataError(f"tfds has no dataset named '{tfds_name}'") from None
    except Exception as err:  # tfds raises many unrelated types (network, checksum, missing split, …)
        raise DataError(f"tfds could not load '{tfds_name}': {type(err).__name__}: {err}") from None
    label = info.features[info.supervised_keys[1]]
    num_classes = getattr(label, "num_classes", None)
    class_names = getattr(label, "names", None)
    x_train, y_train = _to_numpy(tfds, train)
    x_test, y_test = _to_numpy(tfds, test)
    mean, std = PUBLISHED_CONSTANTS.get(tfds_name, (None, None))
    return build_dataset(
        name, x_train, y_train, x_test, y_test, num_classes=num_classes, class_names=class_names, mean=mean, std=std
    )
