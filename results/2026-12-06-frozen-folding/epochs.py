import sys, mlflow
for uri in sys.argv[1:]:
    c = mlflow.MlflowClient(uri)
    exp = c.get_experiment_by_name("fersweep")
    for r in sorted(c.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time):
        h = sorted(c.get_metric_history(r.info.run_id, "train/loss"), key=lambda m: m.step)
        v = sorted(c.get_metric_history(r.info.run_id, "val/macro_f1"), key=lambda m: m.step)
        t0 = r.info.start_time
        ts = [round((m.timestamp - t0)/1000,1) for m in h]
        print(uri[-30:], r.info.run_name, "epochs", len(h), "train/loss ts", ts, "end", round((r.info.end_time-t0)/1000,1))
        print("   val f1", [round(m.value,3) for m in v])
