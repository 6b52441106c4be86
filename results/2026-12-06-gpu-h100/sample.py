import csv, random, shutil, collections
from pathlib import Path
src = Path("../shared/data/facial_expressions"); dst = Path(".device/data/facial_expressions")
(dst/"images").mkdir(parents=True, exist_ok=True)
rows = list(csv.reader(open(src/"legend.csv")))
head, rows = rows[0], rows[1:]
by = collections.defaultdict(list)
for r in rows: by[r[2].lower()].append(r)
rng = random.Random(0); limit = 1900; n = len(rows); keep = []
for emo, members in sorted(by.items()):
    q = max(round(len(members)*limit/n), min(len(members), 40))
    keep += rng.sample(members, min(q, len(members)))
seen=set(); out=[]
for r in keep:
    if (src/"images"/r[1]).is_file():
        out.append(r)
        if r[1] not in seen: shutil.copy(src/"images"/r[1], dst/"images"/r[1]); seen.add(r[1])
with open(dst/"legend.csv","w",newline="") as f:
    w=csv.writer(f); w.writerow(head); w.writerows(out)
print(len(out), collections.Counter(r[2].lower() for r in out))
