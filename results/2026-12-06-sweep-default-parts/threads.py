# One mini-Xception training step (batch 64, 64x64, thawed but for the stem and first block),
# median ms over 8x5 steps, with N torch threads: python threads.py N (two at once: two processes).
import sys, time, torch, statistics
sys.path.insert(0, "src")
from fersweep.config.compose import compose_config, build
torch.set_num_threads(int(sys.argv[1]))
cfg = compose_config("conf", "model=mini_xception model.net.freeze=backbone model.net.unfreeze_at_epoch=0 model.net.frozen_after_thaw=2 data.preprocess.size=64".split())
from fersweep.models.finetuning import thaw
net = build(cfg.model.net); thaw(net, 0); net.train()
x = torch.randint(0, 255, (64, 1, 64, 64), dtype=torch.uint8); y = torch.randint(0, 8, (64,))
opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
def step():
    loss = torch.nn.functional.cross_entropy(net(x), y); opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3): step()
ts=[]
for r in range(8):
    s=time.perf_counter()
    for _ in range(5): step()
    ts.append((time.perf_counter()-s)/5*1000)
print(sys.argv[1], "threads: thawed(2 frozen) step ms median", round(statistics.median(ts),1))
