"""Each pair.sh sweep's trials: value (full digits) and minutes. usage: python pair_values.py 0 2048"""
import sys

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
for mb in sys.argv[1:]:
    url = f"sqlite:////tmp/optuna-pair-{mb}.db"
    for summary in optuna.get_all_study_summaries(url):
        for t in optuna.load_study(study_name=summary.study_name, storage=url).trials:
            minutes = (t.datetime_complete - t.datetime_start).total_seconds() / 60
            print(f"memo_mb={mb} trial {t.number} {t.state.name} value={t.value!r} minutes={minutes:.2f}")
