import cv2, numpy as np, random, pathlib, collections
root = pathlib.Path("/work/shared/data/facial_expressions/images")
files = sorted(root.iterdir()); random.seed(0); files = random.sample(files, 1500)
cas = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
r, cx, cy, sizes, n = [], [], [], collections.Counter(), 0
for f in files:
    g = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
    if g is None: continue
    sizes[g.shape] += 1
    s = min(1.0, 128 / max(g.shape)); small = cv2.resize(g, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else g
    faces = cas.detectMultiScale(small, 1.1, 5)
    if len(faces) == 0: n += 1; continue
    x, y, w, h = max(faces, key=lambda b: b[2]*b[3]) / s
    H, W = g.shape
    r.append(max(W, H) / w); cx.append((x + w/2) / W - 0.5); cy.append((y + h/2) / H - 0.5)
r, cx, cy = map(np.array, (r, cx, cy))
print("none", n, "of", len(files)); print(sizes.most_common(5))
print("image side / box side: pct", np.percentile(r, [10, 25, 50, 75, 90]).round(3))
print("centre x offset (of width)", np.percentile(cx, [10, 50, 90]).round(3), "y", np.percentile(cy, [10, 50, 90]).round(3))
