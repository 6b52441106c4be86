"""Where the face step loses faces in the framing check, without a model: the face step on each
of the 1,933 test pictures (linked by emotion into /tmp/testfolder) and on its reframed JPEG.
    .venv/bin/python face_misses.py data.preprocess.face.detector.retry_side=null [detect_side=256 ...]
Run before the second look existed (so without the retry_side override), between commits
ca082c6 and 4135502; today the one look needs retry_side=null. See RUN.md."""
import sys, collections, numpy as np, cv2
from pathlib import Path
from fersweep.config.compose import compose_config, build
from fersweep.data.decode import decode_bytes
from fersweep.data.preprocess import grey_of
cfg = compose_config("conf", ["face=haar", "reframe=default"] + sys.argv[1:])
prep = build(cfg.data.preprocess); ref = build(cfg.data.reframe)
files = sorted(Path("/tmp/testfolder").rglob("*.jpg"))
def iou(a, b):
    ax, ay, aw, ah = a; bx, by, bw, bh = b
    w = max(0, min(ax+aw, bx+bw) - max(ax, bx)); h = max(0, min(ay+ah, by+bh) - max(ay, by))
    return w*h / (aw*ah + bw*bh - w*h)
c = collections.Counter()
for f in files:
    img = decode_bytes(f.read_bytes(), f.name, 10**8, colour=True).image
    orig = prep.face.find(grey_of(img))
    canvas, (left, top) = ref.place(img, f.name)
    canvas = cv2.imdecode(cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 92])[1], cv2.IMREAD_GRAYSCALE)
    new = prep.face.find(canvas)
    o = "orig-face" if orig else "orig-none"
    if not new: c[o, "reframed-none"] += 1; continue
    top_box = new[0].box
    if orig:
        b = orig[0].box; exp = (b.x+left, b.y+top, b.width, b.height)
    else:
        exp = (left, top, img.shape[1], img.shape[0])
    ok = iou(exp, (top_box.x, top_box.y, top_box.width, top_box.height)) > 0.4
    c[o, "same" if ok else "other-largest", "small" if new[0].too_small else ""] += 1
for k, v in sorted(c.items()): print(k, v)
