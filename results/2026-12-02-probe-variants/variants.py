"""Probe variants on fold 0 of the comparisons' 5 folds (split seed 42): features and flips."""
import sys, time
import numpy as np, torch, torch.nn.functional as F
from pathlib import Path
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from fersweep.config.compose import compose_config, build
from fersweep.evaluation.metrics import macro_f1
from fersweep.models.fer_references import fer2013_network
from fersweep.models.classical import grey_resized
torch.set_num_threads(1)
fold = int(sys.argv[1]) if len(sys.argv) > 1 else 0
cfg = compose_config(Path("conf").resolve(), ["model=fer_probe", "data.preprocess.size=64", "data.split.seed=42",
    "data.split.method=identity_kfold", "data.split.folds=5", f"data.split.fold={fold}", "seed=1"])
dm = build(cfg.data); dm.setup("fit")
images, labels = dm.image_set.images, dm.image_set.labels
tr, te = dm.indices("train"), dm.indices("test")
net = fer2013_network(cfg.model.weights)
def feats(imgs, kind, flip=False):
    grey = torch.from_numpy(grey_resized(imgs, 64)[:, None])
    if flip: grey = grey.flip(-1)
    out = []
    with torch.inference_mode():
        for i in range(0, len(grey), 512):
            x = (grey[i:i+512].float() / 255 - 0.5) * 2
            x = net.stem(x.contiguous(memory_format=torch.channels_last))
            maps = []
            for b in net.blocks:
                x = b(x); maps.append(x)
            f4 = maps[3].flatten(1)
            if kind == "add4": out.append(f4)
            elif kind == "add3+4": out.append(torch.cat([F.adaptive_avg_pool2d(maps[2], 4).flatten(1), f4], 1))
            elif kind == "add2+3+4": out.append(torch.cat([F.adaptive_avg_pool2d(maps[1], 4).flatten(1), F.adaptive_avg_pool2d(maps[2], 4).flatten(1), f4], 1))
    return torch.cat(out).numpy()
for kind in ["add4", "add3+4", "add2+3+4"]:
    for C in [0.01, 0.003]:
        t = time.time()
        Xtr, Xte, Xtef = feats(images[tr], kind), feats(images[te], kind), feats(images[te], kind, True)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=2000))
        clf.fit(Xtr, labels[tr])
        p = clf.predict_proba(Xte); pf = (p + clf.predict_proba(Xtef)) / 2
        # train on flipped copies too
        clf2 = make_pipeline(StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=2000))
        clf2.fit(np.concatenate([Xtr, feats(images[tr], kind, True)]), np.concatenate([labels[tr], labels[tr]]))
        q = (clf2.predict_proba(Xte) + clf2.predict_proba(Xtef)) / 2
        cl = clf.classes_
        f = lambda pr: macro_f1(labels[te], cl[pr.argmax(1)])
        print(kind, C, "plain", round(f(p), 4), "flip-tta", round(f(pf), 4), "flip-train+tta", round(f(q), 4), f"{time.time()-t:.0f}s", flush=True)
