"""A served classifier's predict in one process, as MLflow's server calls it (a thread per
request): 200 single-image requests from 1, 2 and 8 threads, with torch on 2 threads and on 1,
twice in turn. python in_process.py <model URI> <tracking URI> <images folder>"""

from __future__ import annotations

import base64
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pandas as pd
import torch

if __name__ == "__main__":
    model_uri, tracking_uri, folder = sys.argv[1:4]
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(model_uri)
    images = [f.read_bytes() for f in sorted(Path(folder).iterdir())[::40][:200]]

    def one(image: bytes):
        request = pd.DataFrame({"image": [base64.b64encode(image).decode()]})
        return model.predict(request, params={"whole_image": True})

    one(images[0])
    for threads in (2, 1, 2, 1):
        torch.set_num_threads(threads)
        for at_once in (1, 2, 8):
            start = time.perf_counter()
            with ThreadPoolExecutor(at_once) as clients:
                list(clients.map(one, images))
            rate = len(images) / (time.perf_counter() - start)
            print(f"torch threads {threads}, {at_once} at once: {rate:.1f} images/s", flush=True)
