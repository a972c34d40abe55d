"""Collation (exact tensors), per-rank splitting and the resumable loader position."""

import torch

from tokenization.chat import IGNORE_INDEX
from train.data import Encoded, InMemory, Loader, ObjectView, Views, collate


def item(ids, labels, frames=1, objects=()):
    return Encoded(ids, labels, torch.zeros(frames, 3, 2, 2), True, list(objects))


def view(frame):
    return ObjectView(torch.zeros(3, 2, 2), torch.ones(1, 1), torch.zeros(1, 1, 2), 1, frame)


def test_collate_pads_and_offsets_frames():
    batch = collate([item([1, 2, 3], [X := IGNORE_INDEX, 2, 3], 2, [view(1)]), item([4, 5], [X, 5], 1, [view(0)])], pad_id=9)
    assert batch.input_ids.tolist() == [[1, 2, 3], [4, 5, 9]]
    assert batch.labels.tolist() == [[X, 2, 3], [X, 5, X]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert [tuple(f.shape) for f in batch.images] == [(2, 3, 2, 2), (1, 3, 2, 2)] and batch.image_in_text.tolist() == [True, True, True]
    assert [o.frame for o in batch.objects] == [1, 2] and batch.supervised == 3


def ids_of(loader, n):
    it = loader.batches()
    return [next(it).input_ids[:, 0].tolist() for _ in range(n)]


def loader(n, rank=0, world=1, seed=5):
    return Loader(InMemory([item([i], [i]) for i in range(n)]), 2, rank, world, seed=seed, pad_id=0)


def test_ranks_get_disjoint_equal_shares_and_epochs_reshuffle():
    r0, r1 = ids_of(loader(11, 0, 2), 2), ids_of(loader(11, 1, 2), 2)
    # 11 // 2 ranks // 2 = 2 batches each per epoch; rank r takes the epoch order's positions r, r+2, ...
    order = list(InMemory(list(range(11))).stream(0, 5))
    assert r0 == [order[0:4:2], order[4:8:2]] and r1 == [order[1:4:2], order[5:8:2]]
    second = list(InMemory(list(range(11))).stream(1, 5))
    assert second != order and ids_of(loader(11, 0, 2), 4) == r0 + [second[0:4:2], second[4:8:2]]


def test_resume_position_continues_the_same_stream():
    full = ids_of(loader(6), 7)
    a = loader(6)
    head = ids_of(a, 4)
    assert a.state_dict() == {"batches": 4}
    b = loader(6)
    b.load_state_dict(a.state_dict())
    assert head + ids_of(b, 3) == full


def test_dataloader_workers_keep_the_single_process_order():
    from train.train import batch_stream

    single = ids_of(loader(10), 7)
    two = loader(10)
    stream = batch_stream(two, workers=2)
    assert [next(stream).input_ids[:, 0].tolist() for _ in range(7)] == single and two.consumed == 7


def test_video_frames_share_the_token_budget():
    views = Views(image_size=384, local_size=224, patch=14, video_max_tokens=8192)
    # 384 px = 27 patches; a clip gets min(27, floor(sqrt(8192 / F))) patches a side
    assert [views.video_side(f) for f in (1, 11, 12, 60, 180, 9000)] == [378, 378, 364, 154, 84, 14]
    assert (views.video_side(180) // 14) ** 2 * 180 == 6 * 6 * 180 <= 8192
