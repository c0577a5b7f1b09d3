"""DataLoader: batch sizes and drop_last, sequential and shuffled orders, reproducibility by seed and
epoch (resuming), devices, copies, the per-sample path for generic Datasets, and errors; TensorDataset."""

import numpy as np
import pytest

import minigrad_q as mq
from minigrad_q.data import DataLoader, Dataset, ImageDataset, TensorDataset

N = 10
IMAGES = np.arange(N * 2 * 3, dtype=np.float32).reshape(N, 1, 2, 3)
LABELS = np.arange(N, dtype=np.int64) % 4


def dataset():
    return TensorDataset(IMAGES, LABELS)


def epoch_labels(loader):
    return np.concatenate([labels.numpy() for _, labels in loader])


@pytest.mark.parametrize("batch_size, drop_last, sizes", [
    (4, False, [4, 4, 2]), (4, True, [4, 4]), (5, True, [5, 5]), (1, False, [1] * 10), (32, False, [10]), (32, True, []),
])
def test_batch_sizes_and_length(batch_size, drop_last, sizes):
    loader = DataLoader(dataset(), batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == len(sizes)
    assert [len(labels) for _, labels in loader] == sizes


def test_sequential_batches_are_the_rows_in_order():
    batches = list(DataLoader(dataset(), batch_size=4))
    images, labels = batches[1]
    assert isinstance(images, mq.Tensor) and isinstance(labels, mq.Tensor)
    assert images.dtype == mq.float32 and labels.dtype == mq.int64 and not images.requires_grad
    np.testing.assert_array_equal(images.numpy(), IMAGES[4:8])
    np.testing.assert_array_equal(labels.numpy(), LABELS[4:8])


def test_shuffled_epoch_is_a_permutation_and_images_follow_their_labels():
    loader = DataLoader(TensorDataset(IMAGES, np.arange(N)), batch_size=3, shuffle=True, seed=7)
    seen = []
    for images, index in loader:
        np.testing.assert_array_equal(images.numpy(), IMAGES[index.numpy()])
        seen.append(index.numpy())
    order = np.concatenate(seen)
    assert sorted(order) == list(range(N)) and list(order) != list(range(N))
    np.testing.assert_array_equal(order, loader.order(0))


def test_same_seed_same_orders_and_each_epoch_reshuffles():
    labels = TensorDataset(np.arange(100))
    first = DataLoader(labels, batch_size=16, shuffle=True, seed=3)
    second = DataLoader(labels, batch_size=16, shuffle=True, seed=3)
    epochs_first = [np.concatenate([b[0].numpy() for b in first]) for _ in range(3)]
    epochs_second = [np.concatenate([b[0].numpy() for b in second]) for _ in range(3)]
    for a, b in zip(epochs_first, epochs_second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(epochs_first[0], epochs_first[1]) and not np.array_equal(epochs_first[1], epochs_first[2])
    other = DataLoader(labels, batch_size=16, shuffle=True, seed=4)
    assert not np.array_equal(np.concatenate([b[0].numpy() for b in other]), epochs_first[0])


def test_order_of_epoch_k_depends_only_on_seed_and_k():
    labels = TensorDataset(np.arange(50))
    uninterrupted = DataLoader(labels, batch_size=8, shuffle=True, seed=11)
    orders = [np.concatenate([b[0].numpy() for b in uninterrupted]) for _ in range(4)]
    resumed = DataLoader(labels, batch_size=8, shuffle=True, seed=11)
    resumed.set_epoch(2)
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in resumed]), orders[2])
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in resumed]), orders[3])


def test_state_dict_resumes_the_next_epoch():
    labels = TensorDataset(np.arange(30))
    loader = DataLoader(labels, batch_size=8, shuffle=True)  # seed drawn from mq's generator
    list(loader)
    state = loader.state_dict()
    assert state == {"seed": loader.seed, "epoch": 1}
    expected = np.concatenate([b[0].numpy() for b in loader])
    resumed = DataLoader(labels, batch_size=8, shuffle=True, seed=0)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in resumed]), expected)


def test_seed_none_is_fixed_by_manual_seed():
    mq.manual_seed(123)
    first = DataLoader(dataset(), shuffle=True).seed
    mq.manual_seed(123)
    assert DataLoader(dataset(), shuffle=True).seed == first
    assert DataLoader(dataset()).seed is None  # no shuffling, no seed needed


def test_batches_are_copies_not_views_of_the_dataset():
    images = IMAGES.copy()
    for shuffle in (False, True):
        batch, _ = next(iter(DataLoader(TensorDataset(images, LABELS), batch_size=4, shuffle=shuffle, seed=0)))
        batch.data[...] = -1
    np.testing.assert_array_equal(images, IMAGES)


def test_batches_land_on_the_device(device):
    for shuffle in (False, True):
        loader = DataLoader(dataset(), batch_size=4, shuffle=shuffle, seed=1, device=device)
        images, labels = next(iter(loader))
        assert images.device.startswith(device) and labels.device.startswith(device)
        np.testing.assert_array_equal(labels.numpy(), LABELS[loader.order(0)[:4]])


def test_arrays_already_on_the_device_are_gathered_there(device):
    on_device = TensorDataset(mq.tensor(IMAGES, device=device), mq.tensor(LABELS, device=device))
    loader = DataLoader(on_device, batch_size=4, shuffle=True, seed=2, device=device)
    images, labels = next(iter(loader))
    assert images.device == on_device.tensors[0].device
    np.testing.assert_array_equal(images.numpy(), IMAGES[loader.order(0)[:4]])


def test_array_datasets_are_batched_without_getitem():
    class NoPerSample(TensorDataset):
        def __getitem__(self, index):
            raise AssertionError("the loader should index whole arrays")

    assert len(list(DataLoader(NoPerSample(IMAGES, LABELS), batch_size=3, shuffle=True, seed=0))) == 4


class Squares(Dataset):
    """A generic dataset: sample i is (an array, an int, a float)."""

    def __getitem__(self, index):
        return np.full((2, 2), index, dtype=np.float32), index, index / 2

    def __len__(self):
        return 7


def test_generic_datasets_are_stacked_per_sample(device):
    loader = DataLoader(Squares(), batch_size=3, shuffle=True, seed=5, device=device)
    batches = list(loader)
    assert len(batches) == 3 == len(loader)
    images, indices, halves = batches[0]
    expected = loader.order(0)[:3]
    assert images.shape == (3, 2, 2) and images.dtype == mq.float32 and images.device.startswith(device)
    np.testing.assert_array_equal(indices.numpy(), expected)
    assert indices.dtype == mq.int64 and halves.dtype == mq.float32
    np.testing.assert_allclose(halves.numpy(), expected / 2)
    np.testing.assert_array_equal(images.numpy()[:, 0, 0], expected)


def test_generic_and_array_paths_agree():
    class Rows(Dataset):
        def __getitem__(self, index):
            return IMAGES[index], LABELS[index]

        def __len__(self):
            return N

    for a, b in zip(DataLoader(Rows(), 4, shuffle=True, seed=9), DataLoader(dataset(), 4, shuffle=True, seed=9)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.numpy(), y.numpy())
            assert x.dtype == y.dtype


def test_generic_samples_must_stack():
    class Ragged(Dataset):
        def __getitem__(self, index):
            return np.zeros(index + 1), 0

        def __len__(self):
            return 3

    with pytest.raises(ValueError, match=r"cannot stack samples of different shapes \[\(1,\), \(2,\), \(3,\)\]"):
        next(iter(DataLoader(Ragged(), batch_size=3)))


def test_abstract_dataset_says_what_to_define():
    class Empty(Dataset):
        pass

    with pytest.raises(NotImplementedError, match="Empty must define __len__"):
        len(Empty())


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
    ({"batch_size": 2.0}, "batch_size must be a positive integer, got 2.0"),
    ({"seed": -1}, "seed must be a non-negative integer or None, got -1"),
    ({"device": "tpu"}, "unknown device 'tpu'"),
])
def test_bad_loader_options(kwargs, message):
    with pytest.raises((ValueError, mq.DeviceError), match=message):
        DataLoader(dataset(), **kwargs)


def test_loader_errors_for_non_datasets_and_bad_epochs():
    with pytest.raises(TypeError, match="the dataset must define __getitem__ and __len__, got int"):
        DataLoader(5)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        DataLoader(dataset()).set_epoch(-1)
    with pytest.raises(ValueError, match=r"expected keys \['epoch', 'seed'\]"):
        DataLoader(dataset()).load_state_dict({"epoch": 1})


def test_tensor_dataset_rows_and_errors():
    data = TensorDataset(mq.tensor(IMAGES), LABELS)
    image, label = data[3]
    np.testing.assert_array_equal(image.numpy(), IMAGES[3])
    assert label.item() == LABELS[3] and len(data) == N
    with pytest.raises(ValueError, match=r"same size in the first dimension, got \[10, 9\]"):
        TensorDataset(IMAGES, LABELS[:9])
    with pytest.raises(TypeError, match="argument 1 should be a Tensor or an array, got list"):
        TensorDataset(IMAGES, [1, 2])
    with pytest.raises(ValueError, match="needs at least one tensor"):
        TensorDataset()


def test_image_dataset_checks_its_arrays():
    with pytest.raises(ValueError, match=r"toy: images must be \(N, C, H, W\), got shape \(10, 2, 3\)"):
        ImageDataset(IMAGES[:, 0], LABELS, name="toy", split="train", num_classes=4)
    with pytest.raises(ValueError, match="toy: labels must be a 1-d integer array"):
        ImageDataset(IMAGES, LABELS.astype(np.float32), name="toy", split="train", num_classes=4)
    toy = ImageDataset(IMAGES, LABELS, name="toy", split="train", num_classes=4)
    assert repr(toy) == "ImageDataset(name='toy', split='train', 10 images of shape (1, 2, 3), 4 classes)"
    assert repr(DataLoader(toy, 4)).startswith("DataLoader(ImageDataset of 10, batch_size=4")


def test_an_image_dataset_moved_to_a_device_serves_the_same_batches_from_there(device):
    images = ImageDataset(IMAGES, LABELS, name="tiny", split="train", num_classes=4)
    moved = images.to(device)
    assert (moved is images) == (device == "cpu")
    assert mq.backend.device_of(moved.images).startswith(device) and mq.backend.device_of(moved.labels).startswith(device)
    described = (moved.name, moved.split, moved.num_classes, moved.shape, moved.nbytes)
    assert described == ("tiny", "train", 4, (1, 2, 3), images.nbytes)
    here = DataLoader(moved, batch_size=4, shuffle=True, seed=3, device=device)
    there = DataLoader(images, batch_size=4, shuffle=True, seed=3, device=device)
    for (a_images, a_labels), (b_images, b_labels) in zip(here, there, strict=True):
        assert a_images.device == b_images.device and a_images.device.startswith(device)
        np.testing.assert_array_equal(a_images.numpy(), b_images.numpy())
        np.testing.assert_array_equal(a_labels.numpy(), b_labels.numpy())


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("ranks", [2, 3])
def test_shards_of_each_batch_make_up_the_batch_one_loader_gives(shuffle, ranks):
    whole = DataLoader(dataset(), batch_size=4, shuffle=shuffle, seed=7)
    shards = [DataLoader(dataset(), batch_size=4, shuffle=shuffle, seed=7, shard=(rank, ranks)) for rank in range(ranks)]
    expected = [labels.numpy() for _, labels in whole]  # 10 images: batches of 4, 4 and 2
    expected = [batch for batch in expected if len(batch) >= ranks]  # the last batch of 2 has too few for 3 ranks
    parts = [[labels.numpy() for _, labels in loader] for loader in shards]
    assert all(len(loader) == len(expected) == (3 if ranks == 2 else 2) for loader in shards)
    for index, batch in enumerate(expected):
        pieces = [part[index] for part in parts]
        np.testing.assert_array_equal(np.concatenate(pieces), batch)  # rank order, contiguous parts
        assert max(map(len, pieces)) - min(map(len, pieces)) <= 1


def test_a_last_batch_with_fewer_samples_than_ranks_is_left_out():
    loaders = [DataLoader(dataset(), batch_size=3, shard=(rank, 2)) for rank in range(2)]  # batches 3, 3, 3, 1
    assert [len(loader) for loader in loaders] == [3, 3]
    assert [[len(labels) for _, labels in loader] for loader in loaders] == [[1, 1, 1], [2, 2, 2]]


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0), [0, 2], (0.0, 2), (True, 2)])
def test_a_shard_that_is_not_a_rank_of_ranks_is_refused(shard):
    with pytest.raises(ValueError, match="shard must be \\(rank, ranks\\) with 0 <= rank < ranks"):
        DataLoader(dataset(), batch_size=2, shard=shard)
