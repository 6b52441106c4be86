"""Every trial of a sweep's arms (state, value, minutes, params) as CSV, and each against the
same trial of an earlier run's trials.csv: python trials.py <optuna URL> <sweep name> [<earlier trials.csv>]"""

import ast
import csv
import sys

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
url, name = sys.argv[1:3]
earlier = {}
if len(sys.argv) > 3:
    with open(sys.argv[3]) as handle:
        for row in csv.DictReader(handle):
            earlier[row["arm"], int(row["trial"])] = row
writer = csv.writer(sys.stdout)
writer.writerow(["arm", "trial", "state", "value", "minutes", "earlier_state", "earlier_value", "same_params", "params"])
for arm in ("original", "balanced"):
    study = optuna.load_study(study_name=f"{name}-{arm}", storage=url)
    for t in study.trials:
        minutes = (t.datetime_complete - t.datetime_start).total_seconds() / 60 if t.datetime_complete else None
        before = earlier.get((arm, t.number), {})
        same = ast.literal_eval(before["params"]) == t.params if before else None
        writer.writerow([
            arm, t.number, t.state.name, t.value, round(minutes, 2) if minutes else "",
            before.get("state", ""), before.get("value", ""), same, t.params,
        ])
