"""The baseline for bench/service.py: the plain FastAPI endpoint a user would write.

Parse a JSON body, preprocess, call the model once per request, answer labels and
probabilities. No batching, no auth. Loads the model from the same store as the service.

    python bench/_plain_server.py --port 8766 --store DIR --model NAME
"""

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from fastapi import FastAPI, Request  # noqa: E402 - at module level: FastAPI reads the annotations


def build(store: str, model: str):
    import numpy as np
    import torch

    from nbaimaas.backends.local import LocalBackend

    torch.set_num_threads(1)
    servable = LocalBackend(store).cache.get(model)
    net, pre, classes = servable.model.eval(), servable.preprocessor, servable.info.classes
    app = FastAPI()

    @app.post("/v1/models/{ref}/predict")
    async def predict(ref: str, request: Request):
        body = await request.json()
        x = pre.transform(np.asarray(body["inputs"], dtype=np.float32))
        with torch.no_grad():
            probs = torch.softmax(net(x), dim=1)
        return {"labels": [classes[i] for i in probs.argmax(1).tolist()], "probabilities": probs.tolist()}

    return app


def main() -> None:
    import uvicorn

    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--store", required=True)
    p.add_argument("--model", required=True)
    a = p.parse_args()
    uvicorn.run(build(a.store, a.model), host="127.0.0.1", port=a.port, workers=1, access_log=False,
                log_level="warning")


if __name__ == "__main__":
    main()
