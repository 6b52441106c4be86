import sys, time, torch, statistics
sys.path.insert(0, "/work/main/src")
from fersweep.config.compose import compose_config, build
from fersweep.models import mini_xception as mx
cfg = compose_config("/work/main/conf", "model=mini_xception model.net.freeze=backbone model.net.unfreeze_at_epoch=0 model.net.frozen_after_thaw=2 data.preprocess.size=64".split())
def plain_features(self, images):
    x = (images.float() / 255.0 - 0.5) * 2
    x = self.stem(x.contiguous(memory_format=torch.channels_last))
    for block in self.blocks: x = block(x)
    return x
folded_features = mx.MiniXception.features
x = torch.randint(0, 255, (64, 1, 64, 64), dtype=torch.uint8); y = torch.randint(0, 8, (64,))
for phase in ("frozen", "thawed"):
    net = build(cfg.model.net)
    if phase == "thawed": net.on_epoch(0)
    net.train()
    opt = torch.optim.Adam(net.parameter_groups(), lr=1e-3)
    def step():
        loss = torch.nn.functional.cross_entropy(net(x), y); opt.zero_grad(); loss.backward(); opt.step()
    res = {"plain": [], "folded": []}
    for r in range(12):
        for name, f in (("plain", plain_features), ("folded", folded_features)):
            mx.MiniXception.features = f
            step()
            s = time.perf_counter()
            for _ in range(5): step()
            res[name].append((time.perf_counter() - s) / 5 * 1000)
    print(phase, {k: round(statistics.median(v), 1) for k, v in res.items()})
