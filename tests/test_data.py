"""vmaptrain.data: every source on real-format data written here (or installed), every
malformed input refused with a DataError that names the problem."""

import gzip
import os
import pickle
import struct
import sys
import tarfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from vmaptrain.data import CIFAR10_MEAN, CIFAR10_STD, DataError, Dataset, load_dataset, normalize

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
CIFAR_JPG_TARBALL = "/work/shared/data/cifar10-jpg.tar.gz"


# --- digits -------------------------------------------------------------------------------


def test_digits_shapes_split_and_pixels():
    data = load_dataset("digits")
    assert isinstance(data, Dataset) and data.name == "digits"
    assert data.x_train.shape == (1433, 8, 8, 1) and data.x_test.shape == (364, 8, 8, 1)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int32
    assert data.num_classes == 10 and data.class_names == tuple("0123456789")
    # Every class is split 4:1 by position within the class (positions 0, 5, 10, … → test).
    from sklearn.datasets import load_digits

    bunch = load_digits()
    for cls in range(10):
        members = np.flatnonzero(bunch.target == cls)
        assert np.sum(data.y_test == cls) == len(members[::5])
    # Pixels are v·255/16 rounded half up: 0 → 0, 8 → 128, 16 → 255.
    allowed = {(255 * v + 8) // 16 for v in range(17)}
    assert set(np.unique(np.concatenate([data.x_train.ravel(), data.x_test.ravel()]))) <= allowed
    first_test = bunch.images[np.flatnonzero(bunch.target == bunch.target[0])[0]]
    assert np.array_equal(data.x_test[0, ..., 0], (255 * first_test.astype(int) + 8) // 16)
    assert data.mean.dtype == np.float32 and data.mean.shape == (1,)
    assert np.isclose(data.mean[0], data.x_train.astype(np.float64).mean(), rtol=1e-6)
    assert np.isclose(data.std[0], data.x_train.astype(np.float64).std(), rtol=1e-6)


def test_digits_is_deterministic_and_read_only():
    a, b = load_dataset("digits"), load_dataset("digits")
    for field in ("x_train", "y_train", "x_test", "y_test", "mean", "std"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    with pytest.raises(ValueError):
        a.x_train[0, 0, 0, 0] = 1


def test_normalize_is_pure_and_jittable():
    images = np.array([[[[0, 255]]]], np.uint8)
    mean, std = np.array([10.0, 20.0], np.float32), np.array([2.0, 5.0], np.float32)
    expected = np.array([[[[-5.0, 47.0]]]], np.float32)
    assert np.allclose(normalize(images, mean, std), expected)
    out = jax.jit(normalize)(jnp.asarray(images), mean, std)
    assert out.dtype == jnp.float32 and np.allclose(out, expected)


# --- IDX -------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dir(directory, n_train=6, n_test=4, gz=False, overrides=None):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 5, 7), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 3,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 5, 7), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % 3,
    }
    os.makedirs(directory, exist_ok=True)
    for stem, array in arrays.items():
        raw = (overrides or {}).get(stem, idx_bytes(array))
        if raw is None:
            continue
        if gz:
            with gzip.open(os.path.join(directory, stem + ".gz"), "wb") as f:
                f.write(raw)
        else:
            with open(os.path.join(directory, stem), "wb") as f:
                f.write(raw)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_fixture_round_trip(tmp_path, gz):
    arrays = write_idx_dir(tmp_path, gz=gz)
    data = load_dataset(f"idx:{tmp_path}")
    assert data.x_train.shape == (6, 5, 7, 1) and data.x_test.shape == (4, 5, 7, 1)
    assert np.array_equal(data.x_train[..., 0], arrays["train-images-idx3-ubyte"])
    assert np.array_equal(data.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert data.num_classes == 3 and data.y_train.dtype == np.int32


@pytest.mark.skipif(
    not os.path.isdir(FASHION_MNIST_DIR),
    reason=f"Fashion-MNIST IDX files not installed at {FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)",
)
def test_idx_real_fashion_mnist():
    data = load_dataset(f"idx:{FASHION_MNIST_DIR}")
    assert data.x_train.shape == (60000, 28, 28, 1) and data.x_test.shape == (10000, 28, 28, 1)
    assert data.num_classes == 10
    assert np.array_equal(np.bincount(data.y_train), [6000] * 10)
    assert np.array_equal(np.bincount(data.y_test), [1000] * 10)
    # The published Fashion-MNIST statistics: mean 0.2860, std 0.3530 of [0, 1] pixels.
    assert abs(data.mean[0] / 255 - 0.2860) < 1e-3 and abs(data.std[0] / 255 - 0.3530) < 1e-3


def good_images():
    return idx_bytes(np.zeros((6, 5, 7), np.uint8))


@pytest.mark.parametrize(
    "name, raw, message",
    [
        ("truncated", good_images()[:-3], "is truncated"),
        ("trailing bytes", good_images() + b"\0", "longer than its header"),
        ("bad magic", b"\x12\x34" + good_images()[2:], "bad magic number"),
        ("not ubyte", b"\0\0\x0d\x03" + good_images()[4:], "only unsigned bytes"),
        ("wrong ndim", idx_bytes(np.zeros((6, 35), np.uint8)), "has 2 dimensions, expected 3"),
        ("no header", b"\0\0", "no header"),
    ],
)
def test_idx_malformed_images_are_refused(tmp_path, name, raw, message):
    write_idx_dir(tmp_path, overrides={"train-images-idx3-ubyte": raw})
    with pytest.raises(DataError, match=message) as err:
        load_dataset(f"idx:{tmp_path}")
    assert "train-images-idx3-ubyte" in str(err.value) and str(err.value).startswith("dataset 'idx:")


def test_idx_wrong_label_count_missing_file_and_bad_gzip(tmp_path):
    write_idx_dir(tmp_path / "count", overrides={"t10k-labels-idx1-ubyte": idx_bytes(np.zeros(3, np.uint8))})
    with pytest.raises(DataError, match="has 3 labels but .* has 4 images"):
        load_dataset(f"idx:{tmp_path / 'count'}")
    write_idx_dir(tmp_path / "missing", overrides={"t10k-images-idx3-ubyte": None})
    with pytest.raises(DataError, match=r"missing IDX file t10k-images-idx3-ubyte\[\.gz\]"):
        load_dataset(f"idx:{tmp_path / 'missing'}")
    write_idx_dir(tmp_path / "gz", gz=True)
    (tmp_path / "gz" / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match="cannot read IDX file .*train-labels-idx1-ubyte.gz"):
        load_dataset(f"idx:{tmp_path / 'gz'}")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"idx:{tmp_path / 'nowhere'}")


# --- CIFAR pickles ---------------------------------------------------------------------------


def cifar_images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def as_rows(images):
    """HWC images → CIFAR's rows of 3 colour planes."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root, per_batch=3, test=4):
    os.makedirs(root, exist_ok=True)
    train = []
    for i in range(1, 6):
        images, labels = cifar_images(per_batch, i), [(i + j) % 10 for j in range(per_batch)]
        dump(
            os.path.join(root, f"data_batch_{i}"),
            {
                b"batch_label": b"training batch",
                b"labels": labels,
                b"data": as_rows(images),
                b"filenames": [b"x.png"] * per_batch,
            },
        )
        train.append((images, labels))
    test_images = cifar_images(test, 99)
    dump(os.path.join(root, "test_batch"), {b"labels": list(range(test)), b"data": as_rows(test_images)})
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    dump(os.path.join(root, "batches.meta"), {b"label_names": names, b"num_vis": 3072})
    return np.concatenate([t[0] for t in train]), test_images


def test_cifar10_pickles_load_in_hwc_with_published_constants(tmp_path):
    x_train, x_test = write_cifar10(tmp_path / "cifar-10-batches-py")
    data = load_dataset(f"cifar:{tmp_path}")
    assert data.x_train.shape == (15, 32, 32, 3) and data.x_test.shape == (4, 32, 32, 3)
    assert np.array_equal(data.x_train, x_train) and np.array_equal(data.x_test, x_test)
    assert data.y_train[:3].tolist() == [1, 2, 3] and data.num_classes == 10
    assert data.class_names[0] == "airplane" and len(data.class_names) == 10
    assert np.array_equal(data.mean, CIFAR10_MEAN) and np.array_equal(data.std, CIFAR10_STD)


def test_cifar100_pickles_use_fine_labels(tmp_path):
    images = cifar_images(5, 1)
    dump(tmp_path / "train", {b"data": as_rows(images), b"fine_labels": [0, 99, 5, 5, 7], b"coarse_labels": [0] * 5})
    dump(tmp_path / "test", {b"data": as_rows(images[:2]), b"fine_labels": [1, 2], b"coarse_labels": [0, 0]})
    dump(tmp_path / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)]})
    data = load_dataset(f"cifar:{tmp_path}")
    assert data.num_classes == 100 and data.y_train.tolist() == [0, 99, 5, 5, 7]
    assert np.array_equal(data.x_train, images) and data.class_names[99] == "c99"
    assert not np.array_equal(data.mean, CIFAR10_MEAN)  # computed, not CIFAR-10's


def python2_cifar_pickle(rows: np.ndarray, labels: list[int]) -> bytes:
    """The opcodes Python 2's cPickle (protocol 2) writes for a CIFAR batch: str keys as
    SHORT_BINSTRING, the array via numpy.core.multiarray._reconstruct."""

    def binstring(b):
        return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<i", len(b)) + b)

    n, width = rows.shape
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        + b"cnumpy\nndarray\n"
        + b"K\x00\x85"
        + binstring(b"b")
        + b"\x87R"
        + b"(K\x01"
        + b"M"
        + struct.pack("<H", n)
        + b"M"
        + struct.pack("<H", width)
        + b"\x86"
        + b"cnumpy\ndtype\n"
        + binstring(b"u1")
        + b"K\x00K\x01\x87R"
        + b"(K\x03"
        + binstring(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        + b"\x89"
        + binstring(rows.tobytes())
        + b"tb"
    )
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}(" + binstring(b"data") + array + binstring(b"labels") + label_list + b"u."


def test_cifar_python2_format_loads(tmp_path):
    write_cifar10(tmp_path)
    images = cifar_images(3, 7)
    (tmp_path / "test_batch").write_bytes(python2_cifar_pickle(as_rows(images), [4, 0, 9]))
    data = load_dataset(f"cifar:{tmp_path}")
    assert np.array_equal(data.x_test, images) and data.y_test.tolist() == [4, 0, 9]


class _RunsShell:
    """Pickles into a call of os.system, like a hostile file would."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_cifar_refuses_code_in_pickles(tmp_path):
    marker = tmp_path / "pwned"
    write_cifar10(tmp_path)
    dump(tmp_path / "test_batch", {b"data": _RunsShell(f"touch {marker}"), b"labels": []})
    with pytest.raises(
        DataError, match=r"refusing to unpickle .*test_batch: global '(posix|os)\.system' is not allowed"
    ):
        load_dataset(f"cifar:{tmp_path}")
    assert not marker.exists()

    # A hand-written GLOBAL for builtins.eval, protocol 0 style.
    (tmp_path / "test_batch").write_bytes(b"cbuiltins\neval\n(Vopen(%r, 'w')\ntR." % str(marker).encode())
    with pytest.raises(DataError, match="global 'builtins.eval' is not allowed"):
        load_dataset(f"cifar:{tmp_path}")
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload, message",
    [
        # numpy.ndarray itself is admitted only as _reconstruct's argument, never as a callable.
        (b"\x80\x02cnumpy\nndarray\nK\x05\x85R.", "not a readable CIFAR pickle"),
        # Object arrays could carry arbitrary objects: dtype('O') is refused.
        (b"\x80\x02cnumpy\ndtype\nU\x01OK\x00K\x01\x87R.", "only plain numeric dtypes"),
        (b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00utf7\x86R.", "latin-1"),
        (b"\x80\x02}(U\x04data", "not a readable CIFAR pickle"),  # truncated
    ],
)
def test_cifar_admitted_globals_are_narrowed(tmp_path, payload, message):
    write_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(payload)
    with pytest.raises(DataError, match=message):
        load_dataset(f"cifar:{tmp_path}")


def test_cifar_malformed_batches(tmp_path):
    write_cifar10(tmp_path)
    os.remove(tmp_path / "data_batch_3")
    with pytest.raises(DataError, match="lacks data_batch_3"):
        load_dataset(f"cifar:{tmp_path}")
    write_cifar10(tmp_path)
    dump(tmp_path / "test_batch", {b"data": as_rows(cifar_images(4, 0)), b"labels": [1, 2]})
    with pytest.raises(DataError, match="has 4 images but 2 labels"):
        load_dataset(f"cifar:{tmp_path}")
    dump(tmp_path / "test_batch", {b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]})
    with pytest.raises(DataError, match=r"'data' must be uint8 \[N, 3072\]"):
        load_dataset(f"cifar:{tmp_path}")
    dump(tmp_path / "test_batch", {b"data": as_rows(cifar_images(2, 0)), b"labels": [1, 10]})
    with pytest.raises(DataError, match="test label 10 is out of range for 10 classes"):
        load_dataset(f"cifar:{tmp_path}")
    os.makedirs(tmp_path / "cifar-100-python")
    with pytest.raises(DataError, match="no CIFAR python batches"):
        load_dataset(f"cifar:{tmp_path / 'cifar-100-python'}")


# --- npz -------------------------------------------------------------------------------------


def npz_arrays(**overrides):
    rng = np.random.default_rng(0)
    arrays = dict(
        x_train=rng.integers(0, 256, (6, 4, 4), dtype=np.uint8),
        y_train=np.array([0, 1, 2, 0, 1, 2]),
        x_test=rng.integers(0, 256, (3, 4, 4), dtype=np.uint8),
        y_test=np.array([2, 1, 0]),
    )
    arrays.update(overrides)
    return {k: v for k, v in arrays.items() if v is not None}


def test_npz_loads_and_adds_channel_axis(tmp_path):
    arrays = npz_arrays(class_names=np.array(["a", "b", "c", "d"]))
    np.savez(tmp_path / "d.npz", **arrays)
    data = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert data.x_train.shape == (6, 4, 4, 1) and np.array_equal(data.x_train[..., 0], arrays["x_train"])
    assert data.num_classes == 4 and data.class_names == ("a", "b", "c", "d")
    # Whole-number floats are accepted exactly.
    np.savez(tmp_path / "f.npz", **npz_arrays(x_test=np.full((3, 4, 4, 1), 255.0)))
    assert load_dataset(f"npz:{tmp_path / 'f.npz'}").x_test.max() == 255


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(x_train=np.full((6, 4, 4), 0.5)), "whole numbers in 0..255"),
        (dict(x_train=np.full((6, 4, 4), 256)), "must lie in 0..255"),
        (dict(y_train=np.array([0, 1, 2, 0, 1, -1])), "non-negative"),
        (dict(y_train=np.array([0.0, 1, 2, 0, 1, 2])), "integer labels"),
        (dict(y_test=np.array([2, 1])), "3 images but 2 labels"),
        (dict(x_test=np.zeros((0, 4, 4), np.uint8), y_test=np.zeros(0, int)), "test split is empty"),
        (dict(x_test=np.zeros((3, 5, 4), np.uint8)), r"train images are \(4, 4, 1\) but test images are \(5, 4, 1\)"),
        (dict(y_test=None), "lacks y_test"),
        (dict(class_names=np.array(["a", "b"])), "train label 2 is out of range for 2 classes"),
    ],
)
def test_npz_bad_contents(tmp_path, overrides, message):
    np.savez(tmp_path / "d.npz", **npz_arrays(**overrides))
    with pytest.raises(DataError, match=message):
        load_dataset(f"npz:{tmp_path / 'd.npz'}")


def test_npz_object_arrays_and_non_archives_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    hostile = np.array([_RunsShell(f"touch {marker}"), 1], dtype=object)
    np.savez(tmp_path / "obj.npz", **npz_arrays(y_train=hostile))
    with pytest.raises(DataError, match="'y_train' is an object array .*refusing"):
        load_dataset(f"npz:{tmp_path / 'obj.npz'}")
    assert not marker.exists()
    with open(tmp_path / "pickle.npz", "wb") as f:
        pickle.dump(npz_arrays(), f)
    with pytest.raises(DataError, match="not a readable .npz archive"):
        load_dataset(f"npz:{tmp_path / 'pickle.npz'}")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(DataError, match="single .npy array"):
        load_dataset(f"npz:{tmp_path / 'single.npy'}")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"npz:{tmp_path / 'nothing.npz'}")


# --- image folders ---------------------------------------------------------------------------


def save_image(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def test_folder_png_and_jpg(tmp_path):
    rng = np.random.default_rng(0)
    gray = {name: rng.integers(0, 256, (5, 6), dtype=np.uint8) for name in ("a", "b", "c")}
    save_image(tmp_path / "train/zebra/1.png", gray["a"])
    save_image(tmp_path / "train/ant/2.png", gray["b"])
    save_image(tmp_path / "train/ant/1.png", gray["c"])
    save_image(tmp_path / "test/zebra/x.png", gray["a"])
    (tmp_path / "train/ant/notes.txt").write_text("ignored")
    data = load_dataset(f"folder:{tmp_path}")
    assert data.class_names == ("ant", "zebra") and data.num_classes == 2
    assert data.x_train.shape == (3, 5, 6, 1)
    assert data.y_train.tolist() == [0, 0, 1] and data.y_test.tolist() == [1]
    assert np.array_equal(data.x_train[0, ..., 0], gray["c"])  # ant/1.png before ant/2.png (PNG is lossless)

    # A colour JPEG anywhere makes the whole set RGB; grayscale images are repeated to 3 channels.
    save_image(tmp_path / "test/ant/y.jpg", np.full((5, 6, 3), 200, np.uint8))
    data = load_dataset(f"folder:{tmp_path}")
    assert data.x_test.shape == (2, 5, 6, 3) and np.abs(data.x_test[0].astype(int) - 200).max() <= 2
    assert np.array_equal(data.x_train[0, ..., 2], gray["c"])


def test_folder_errors(tmp_path):
    save_image(tmp_path / "train/a/1.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="has no test/ sub-folder"):
        load_dataset(f"folder:{tmp_path}")
    os.makedirs(tmp_path / "test")
    with pytest.raises(DataError, match="test holds no .png/.jpg images"):
        load_dataset(f"folder:{tmp_path}")
    os.makedirs(tmp_path / "test/a")
    with pytest.raises(DataError, match="class folder .*test/a holds no .png/.jpg images"):
        load_dataset(f"folder:{tmp_path}")
    save_image(tmp_path / "test/a/1.png", np.zeros((4, 5), np.uint8))
    with pytest.raises(DataError, match=r"images differ in size: .*test/a/1.png is 5×4"):
        load_dataset(f"folder:{tmp_path}")
    save_image(tmp_path / "test/b/1.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="classes missing from train/: b"):
        load_dataset(f"folder:{tmp_path}")
    empty = tmp_path / "empty"
    os.makedirs(empty / "train")
    os.makedirs(empty / "test")
    with pytest.raises(DataError, match="has no class sub-folders"):
        load_dataset(f"folder:{empty}")
    os.makedirs(tmp_path / "bad/train/a")
    os.makedirs(tmp_path / "bad/test/a")
    (tmp_path / "bad/train/a/1.png").write_bytes(b"not a png")
    save_image(tmp_path / "bad/test/a/1.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="cannot decode image .*1.png"):
        load_dataset(f"folder:{tmp_path / 'bad'}")


@pytest.mark.skipif(not os.path.isfile(CIFAR_JPG_TARBALL), reason=f"{CIFAR_JPG_TARBALL} not present")
def test_folder_on_cifar10_jpeg_copy_subtree(tmp_path):
    """The shared CIFAR-10 JPEG copy has the folder layout; load 3 images per class and split."""
    per_class = {}
    with tarfile.open(CIFAR_JPG_TARBALL, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3 and per_class.get(tuple(parts[:2]), 0) < 3:
                per_class[tuple(parts[:2])] = per_class.get(tuple(parts[:2]), 0) + 1
                tar.extract(member, tmp_path, filter="data")
            if len(per_class) == 20 and all(v == 3 for v in per_class.values()):
                break
    data = load_dataset(f"folder:{tmp_path}")
    assert data.class_names == (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    assert data.x_train.shape == (30, 32, 32, 3) and data.x_test.shape == (30, 32, 32, 3)
    assert np.array_equal(np.bincount(data.y_train), [3] * 10)


# --- tfds ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, shape", [("cifar10", (32, 32, 3)), ("mnist", (28, 28, 1))])
def test_tfds_under_mock_data(name, shape):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        data = load_dataset(name)
    assert data.x_train.shape == (6, *shape) and data.x_test.shape == (6, *shape)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int32 and data.num_classes == 10
    assert data.mean.shape == (shape[-1],)
    if name == "cifar10":
        assert np.array_equal(data.mean, CIFAR10_MEAN)


def test_tfds_unknown_name():
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataError, match="tfds has no dataset named 'no_such_dataset_xyz'"):
        load_dataset("tfds:no_such_dataset_xyz")


def test_tfds_missing_gives_install_hint(monkeypatch):
    # A None entry in sys.modules makes `import` fail, as on a machine without the packages.
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(DataError, match="need tensorflow and tensorflow-datasets.*pip install"):
        load_dataset("cifar10")


# --- spec ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "foo",
            "dataset 'foo': unknown source; expected one of digits, cifar10, "
            ".*idx:DIR, cifar:DIR, npz:FILE, folder:DIR",
        ),
        ("idx:", "idx: needs a path"),
        ("tfds:", "tfds: needs a dataset name"),
        ("", "empty or non-string spec"),
    ],
)
def test_unknown_specs(spec, message):
    with pytest.raises(DataError, match=message):
        load_dataset(spec)
