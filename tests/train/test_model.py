"""The model: deterministic k-means, loud count checks, dummy pass, both frameworks' forward."""

import math

import pytest
import torch

from tokenization.chat import RenderConfig
from tokenization.saot_torch import saot_crop
from train.config import ModelConfig
from train.data import Views, collate, encode_all
from train.model import build_model, kmeans
from train.synthetic import synthetic_examples
from train.tokenizer import char_tokenizer


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


def batch_for(model, tok, framework, indices):
    examples = synthetic_examples(6, seed=1, image_size=28, n_tokens=4, lite=framework == "lite")
    items, rejects = encode_all([examples[i] for i in indices], tok, RenderConfig(layout=framework, lite_tokens=4),
                                Views(28, 28, model.patch, 8192))
    assert not rejects
    return collate(items, tok.pad_token_id)


def test_kmeans_is_deterministic_and_exact_on_separated_clusters():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.2], [10.0, 10.0], [10.2, 10.0], [10.0, 10.2], [0.2, 0.0]])
    c = kmeans(x, 2, iterations=5, seed=0)
    assert sorted(sum(c.tolist(), [])) == pytest.approx([0.2 / 3] * 2 + [30.2 / 3] * 2)
    assert torch.equal(kmeans(x, 2, 5, 0), c)
    x.requires_grad_(True)
    kmeans(x, 2, 5, 0).sum().backward()
    assert x.grad.sum().item() == pytest.approx(4.0)  # each centroid is a mean: its gradient sums to 1 per dim


@pytest.mark.parametrize("framework", ["pixelrefer", "lite"])
def test_initial_loss_is_about_ln_vocab(tok, framework):
    model = build_model(ModelConfig(framework=framework, object_tokens=4, infusion_heads=4), tok)
    batch = batch_for(model, tok, framework, [1, 2])
    loss, n = model(batch)
    assert n == batch.supervised and n > 0
    assert loss.item() / n == pytest.approx(math.log(len(tok)), abs=0.3)
    expected_regions = 3 * 4
    assert int((batch.input_ids == tok.get_vocab()["<REGION>"]).sum()) == expected_regions
    assert (int((batch.input_ids == tok.get_vocab()["<image>"]).sum()) == 0) == (framework == "lite")


def test_feature_count_mismatch_fails_loudly(tok):
    model = build_model(ModelConfig(object_tokens=4), tok)
    batch = batch_for(model, tok, "pixelrefer", [1])
    batch.input_ids[0, batch.input_ids[0].tolist().index(tok.get_vocab()["<REGION>"])] = 5
    with pytest.raises(ValueError, match="3 <REGION> tokens in the batch but 4 features"):
        model(batch)


def test_batch_without_regions_still_gives_object_encoder_gradients(tok):
    model = build_model(ModelConfig(framework="lite", object_tokens=4, infusion_heads=4), tok)
    batch = batch_for(model, tok, "lite", [0, 3])  # both region-less
    assert batch.objects == []
    loss, _ = model(batch)
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith(("object_encoder", "infusion")):
            assert p.grad is not None and torch.count_nonzero(p.grad) == 0, name
    assert torch.count_nonzero(model.projector[0].weight.grad) > 0  # region-less Lite samples keep their image


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tok):
    results = []
    for checkpointing in (False, True):
        model = build_model(ModelConfig(object_tokens=4, gradient_checkpointing=checkpointing), tok)
        loss, _ = model(batch_for(model, tok, "pixelrefer", [1, 2]))
        loss.backward()
        results.append((loss.item(), model.llm.model.layers[0].mlp.up_proj.weight.grad.clone()))
    assert model.llm.model.gradient_checkpointing and model.llm.training
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)


def test_object_encoder_token_counts(tok):
    model = build_model(ModelConfig(object_tokens=4), tok)
    feats, pos = torch.randn(6, 32), torch.zeros(2, 3, 2)
    grid = torch.tensor([[0.0, 0.5, 1.0], [0.2, 0.0, 1.0]])  # 4 masked cells
    enc = model.object_encoder
    assert enc.tokens(feats, grid, pos, 0).shape == (0, 32)
    assert enc.tokens(feats, grid, pos, 3).shape == (3, 32)
    assert torch.equal(enc.tokens(feats, grid, pos, 4), feats[[1, 2, 3, 5]] + enc.pos(pos.reshape(-1, 2))[[1, 2, 3, 5]])
    with pytest.raises(ValueError, match="4 masked grid cells for 5 object tokens"):
        enc.tokens(feats, grid, pos, 5)


def test_pixels_must_be_uint8_and_native_crops_are_resized_on_the_device(tok):
    model = build_model(ModelConfig(object_tokens=4), tok)
    batch = batch_for(model, tok, "pixelrefer", [1])
    with torch.no_grad():
        loss, _ = model(batch)
        obj = batch.objects[0]
        native = obj.crop[:, :20, :17]  # any stored size: the model brings it to grid x patch before the tower
        batch.objects[0] = type(obj)(native, obj.grid, obj.pos, obj.tokens, obj.frame, obj.local)
        resized_loss, _ = model(batch)
        batch.objects[0] = type(obj)(saot_crop(native, tuple(s * 14 for s in obj.grid.shape)), obj.grid, obj.pos, obj.tokens, obj.frame, obj.local)
        assert model(batch)[0].item() == resized_loss.item() != loss.item()
        batch.images = [f.float() for f in batch.images]
        with pytest.raises(TypeError, match="pixels must be uint8 RGB, got torch.float32"):
            model(batch)


def test_frame_features_keep_batch_order_across_frame_sizes(tok):
    model = build_model(ModelConfig(object_tokens=4), tok)
    gen = torch.Generator().manual_seed(0)
    a, b, c = (torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen) for shape in [(1, 3, 28, 28), (2, 3, 14, 14), (1, 3, 28, 28)])
    with torch.no_grad():
        feats = model.frame_features([a, b, c])  # a and c share one tower call
        alone = [*model.encode_images(a), *model.encode_images(b), *model.encode_images(c)]
    assert [tuple(f.shape) for f in feats] == [(4, 32), (1, 32), (1, 32), (4, 32)]
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(feats, alone))
