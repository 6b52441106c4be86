"""The frozen stages' memo: a fine-tune that reads the frozen stages' outputs back trains to the
same weights, to the bit, as one that computes them every step; it keeps only the images
training shows again, shares them between networks with the same frozen weights, and never
reads them for other weights."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F

from fersweep.config.compose import build
from fersweep.errors import ConfigError
from fersweep.models.finetuning import StagedThaw, thaw
from fersweep.models.frozen_memo import SHELF, FrozenMemo
from fersweep.models.mini_xception import MiniXception
from fersweep.tasks.fitting import quiet_library
from tests.test_mini_xception import FINETUNE, network

SCHEDULE = {"freeze": "backbone", "unfreeze_at_epoch": 1, "frozen_after_thaw": 2}


@pytest.fixture(autouse=True)
def empty_shelf():
    SHELF.clear()
    yield
    SHELF.clear()


def counting(compute):
    """`compute`, counting the images it is asked for."""

    def counted(x):
        counted.images += len(x)
        return compute(x)

    counted.images = 0
    return counted


def images(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 1, 64, 64), dtype=torch.uint8, generator=generator)


def fine_tune(net: MiniXception, data: torch.Tensor, epochs: int, copies_from: int) -> None:
    """Epochs of Adam steps in batches of 20 (the last one of 10); the images from `copies_from`
    on are drawn anew each epoch, as augmented copies are."""
    optimizer = torch.optim.Adam(net.parameter_groups(), lr=1e-3)
    labels = torch.arange(len(data)) % 8
    net.train()
    for epoch in range(epochs):
        thaw(net, epoch)
        batch_data = data.clone()
        batch_data[copies_from:] = images(len(data) - copies_from, seed=100 + epoch)
        for start in range(0, len(data), 20):
            optimizer.zero_grad()
            logits = net(batch_data[start : start + 20])
            F.cross_entropy(logits, labels[start : start + 20]).backward()
            optimizer.step()


def test_a_fine_tune_reading_the_memo_trains_the_same_weights_to_the_bit():
    data = images(70)
    plain, memo = network(**SCHEDULE), network(**SCHEDULE, frozen_memo_mb=64)
    memo.remember(data[:50])
    for net in (plain, memo):
        fine_tune(net, data, epochs=3, copies_from=50)
    assert len(SHELF.outputs) == 2 * 50  # the recurring images, whole backbone and thawed depth
    for (name, a), b in zip(plain.state_dict().items(), memo.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_kept_output_is_what_the_stages_compute_in_any_batch():
    net = network(**SCHEDULE, frozen_memo_mb=64).train()
    data = images(40)
    plain = network(**SCHEDULE).train()
    net.remember(data)
    with torch.no_grad():
        net.features(data[:32])  # kept
        for rows in ([3, 33], [0, 35], list(range(5, 39))):  # a lone miss, hits beside misses
            assert torch.equal(net.features(data[rows]), plain.features(data[rows]))


def memo_for(stages, megabytes: float = 64) -> FrozenMemo:
    memo = FrozenMemo(max_megabytes=megabytes)
    memo.use_weights(stages)
    return memo


def test_only_the_remembered_images_are_kept():
    memo, data = memo_for([torch.nn.Conv2d(1, 1, 1)]), images(6)
    memo.remember(data[:3])
    double = counting(lambda x: x.float() * 2)
    assert torch.equal(memo(data, double), data.float() * 2)
    assert torch.equal(memo(data, double), data.float() * 2)
    assert double.images == 6 + 3  # the second time, only the three not remembered
    assert not memo_for([torch.nn.Conv2d(1, 1, 1)]).active  # nothing remembered: all computed


def test_networks_with_the_same_frozen_weights_share_what_is_kept_and_no_other():
    stage, other = torch.nn.Conv2d(1, 1, 1), torch.nn.Conv2d(1, 1, 1)
    data, double = images(4), counting(lambda x: x.float() * 2)
    first, second, different = memo_for([stage]), memo_for([stage]), memo_for([other])
    for memo in (first, second, different):
        memo.remember(data)
        memo(data, double)
    assert double.images == 4 + 0 + 4


def test_a_full_memo_keeps_no_more_and_still_answers():
    memo = memo_for([torch.nn.Conv2d(1, 1, 1)], megabytes=3 * 64 * 64 * 4 / 1e6)  # three floats
    data = images(8)
    memo.remember(data)
    assert torch.equal(memo(data, lambda x: x.float()), data.float())
    assert len(SHELF.outputs) == 3 and SHELF.full
    assert torch.equal(memo(data, lambda x: x.float()), data.float())


def test_what_is_kept_is_read_only_for_the_weights_and_depth_it_was_computed_with():
    net = network(**SCHEDULE, frozen_memo_mb=64).train()
    data = images(10)
    net.remember(data)
    whole = net.memo.weights
    net.features(data)
    thaw(net, 1)  # the thaw: only the stem and first block stay frozen
    assert net.frozen_depth == 2 and net.memo.weights != whole
    with torch.no_grad():
        net.features(data)
        changed = {k: v + 1 if v.is_floating_point() else v for k, v in net.state_dict().items()}
        net.load_state_dict(changed)  # a checkpoint restored, with other frozen weights
        plain = network(**SCHEDULE)
        thaw(plain, 1)
        plain.load_state_dict(changed)
        assert torch.equal(net.features(data), plain.features(data))
    copied = pickle.loads(pickle.dumps(net))  # a logged model carries no memo
    assert len(pickle.dumps(net)) < 1e6 and not copied.memo.active


def test_an_output_kept_in_a_validation_pass_trains_afterwards():
    net = network(**SCHEDULE, frozen_memo_mb=64)
    data = images(8)
    net.remember(data)
    thaw(net, 1)
    with torch.inference_mode():  # Lightning validates in inference mode
        net.eval()(data)
    net.train()
    F.cross_entropy(net(data), torch.arange(8)).backward()
    assert net.blocks[1].first[0].weight.grad is not None


def test_a_negative_memory_for_the_memo_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="model.net.frozen_memo_mb=-1"):
        network(frozen_memo_mb=-1)


def test_a_training_run_remembers_the_recurring_images_and_forgets_them_after(
    compose, tiny_run_overrides
):
    mine = ("model.", "data.preprocess.size", "trainer.max_epochs")
    cfg = compose(
        *(o for o in tiny_run_overrides if not o.startswith(mine)),
        *FINETUNE,
        "model.net.freeze=backbone",
        "model.net.unfreeze_at_epoch=1",
        "model.net.frozen_after_thaw=2",
        "trainer.max_epochs=2",
        "balancing=balanced",
    )
    module, datamodule = build(cfg.model), build(cfg.data)
    seen = []
    module.net.remember = lambda recurring: seen.append(recurring) or MiniXception.remember(
        module.net, recurring
    )
    with quiet_library():
        trainer = build(
            cfg.trainer, callbacks=[StagedThaw()], logger=False, enable_checkpointing=False
        )
        trainer.fit(module, datamodule=datamodule)
    originals = (~datamodule.train_is_copy).sum() + len(datamodule.indices("val"))
    assert datamodule.train_is_copy.any()  # the balanced copies are left out
    assert len(seen) == 1 and len(seen[0]) == originals
    assert 0 < len(SHELF.outputs) <= 2 * originals  # none of the copies
    assert not module.net.memo.active  # training over
