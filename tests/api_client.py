"""Twin's local API through the official `openai` Python client (run by tests/api.rs).

Usage: api_client.py BASE_URL TOKEN
Prints one JSON object of measurements on its last line; any failed check raises.
"""

import json
import math
import sys
import time

import openai
from openai import OpenAI

base_url, token = sys.argv[1], sys.argv[2]
# Generous: this checks behaviour, not speed (`twin bench api` measures that). On a 2-core CI
# machine the server shares the cores with another test's drafts, and llama.cpp's spinning
# threads then slow each token several times over (a 48 s run took 225 s beside two busy loops).
client = OpenAI(base_url=base_url, api_key=token, max_retries=0, timeout=600)
report = {"openai_version": openai.__version__}

# Models: the twin, the twin grounded in the library, the base, each adapter, each chat model.
ids = [m.id for m in client.models.list().data]
assert "twin" in ids and "twin-base" in ids and "twin+library" in ids, ids
assert any(i.startswith("twin:") for i in ids), f"each adapter is a model id: {ids}"
report["models"] = ids
assert client.models.retrieve("twin").id == "twin"

# A completion: max_tokens, usage, and the same seed giving the same text.
messages = [{"role": "user", "content": "Write two sentences about pricing a small product."}]
first = client.chat.completions.create(model="twin", messages=messages, max_tokens=40, seed=11)
text = first.choices[0].message.content
assert text and first.choices[0].finish_reason in ("stop", "length"), first
assert 0 < first.usage.completion_tokens <= 40 and first.usage.prompt_tokens > 0, first.usage
again = client.chat.completions.create(model="twin", messages=messages, max_tokens=40, seed=11)
assert again.choices[0].message.content == text, "same seed, same text"
report["completion"] = text

# A stop sequence ends the text before it.
stopped = client.chat.completions.create(
    model="twin-base", messages=messages, max_tokens=60, temperature=0, stop=[" the "]
)
assert " the " not in stopped.choices[0].message.content, stopped

# A stream: the role first, then text, then the finish reason and the usage; timings kept.
started = time.monotonic()
first_token_s = None
pieces = []
finish = None
usage = None
stream = client.chat.completions.create(
    model="twin",
    messages=messages,
    max_tokens=48,
    temperature=0,
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage
    for choice in chunk.choices:
        if choice.delta.content:
            if first_token_s is None:
                first_token_s = time.monotonic() - started
            pieces.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
total_s = time.monotonic() - started
assert pieces and finish in ("stop", "length") and usage is not None, (pieces, finish, usage)
report["stream"] = {
    "text": "".join(pieces),
    "first_token_ms": round(first_token_s * 1000, 1),
    "tokens": usage.completion_tokens,
    "tokens_per_s": round(usage.completion_tokens / max(total_s - first_token_s, 1e-6), 1),
}

# Grounded in the library: the sources come back with the answer (extra field), both ways.
grounded = client.chat.completions.create(
    model="twin",
    messages=[{"role": "user", "content": "What do I think about shipping small?"}],
    max_tokens=40,
    extra_body={"grounded": True},
)
citations = (grounded.model_extra or {}).get("citations")
assert citations and all(c["title"] and c["chunk_id"] for c in citations), grounded
by_suffix = client.chat.completions.create(
    model="twin+library",
    messages=[{"role": "user", "content": "What do I think about shipping small?"}],
    max_tokens=8,
)
assert (by_suffix.model_extra or {}).get("citations"), by_suffix
report["grounded_sources"] = [c["title"] for c in citations]

# Embeddings: the client's default (base64) and floats agree; near texts are nearer.
texts = ["pricing a small product", "how I price what I sell", "sourdough starter at home"]
default = client.embeddings.create(model="twin", input=texts)
floats = client.embeddings.create(model="twin", input=texts, encoding_format="float")
vectors = [d.embedding for d in default.data]
assert len(vectors) == 3 and len(vectors[0]) == len(floats.data[0].embedding) > 0
assert all(abs(a - b) < 1e-6 for a, b in zip(vectors[0], floats.data[0].embedding))
cos = lambda a, b: sum(x * y for x, y in zip(a, b)) / math.sqrt(
    sum(x * x for x in a) * sum(y * y for y in b)
)
assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2]), "near texts are nearer"
report["embedding"] = {"model": default.model, "dim": len(vectors[0])}

# Errors in OpenAI's shape: a bad token, an unknown model, a bad value.
try:
    OpenAI(base_url=base_url, api_key="twin-wrong", max_retries=0).models.list()
    raise AssertionError("a wrong token was accepted")
except openai.AuthenticationError as e:
    assert e.status_code == 401 and e.code == "invalid_api_key", e
try:
    client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=4)
    raise AssertionError("an unknown model was served")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e
try:
    client.chat.completions.create(model="twin", messages=messages, temperature=7)
    raise AssertionError("temperature 7 was accepted")
except openai.BadRequestError as e:
    assert e.body["param"] == "temperature", e.body

# Concurrent requests are served in the order they arrive (one model, one queue): three
# clients 0.4 s apart, each asking for more tokens than that takes to write, finish in that
# order, none refused.
import threading

finished = []
def ask(name):
    r = client.chat.completions.create(
        model="twin", messages=messages, max_tokens=64, temperature=0
    )
    assert r.choices[0].message.content is not None
    finished.append(name)

workers = []
for name in ["a", "b", "c"]:
    t = threading.Thread(target=ask, args=(name,))
    t.start()
    workers.append(t)
    time.sleep(0.4)
for t in workers:
    t.join()
assert finished == ["a", "b", "c"], finished
report["queued_in_order"] = finished

# A cancelled stream: closing it stops the generation (the server logs when; tests/api.rs
# compares), and the next request is served at once instead of after 2,000 tokens.
long = client.chat.completions.create(
    model="twin",
    messages=[{"role": "user", "content": "Write a very long essay about woodworking."}],
    max_tokens=2000,
    stream=True,
)
seen = 0
for chunk in long:
    if chunk.choices and chunk.choices[0].delta.content:
        seen += 1
        if seen == 5:
            break
long.close()
closed_at_ms = time.time() * 1000
after = time.monotonic()
quick = client.chat.completions.create(model="twin", messages=messages, max_tokens=4)
assert quick.choices[0].message.content is not None
report["cancel"] = {
    "closed_at_ms": closed_at_ms,
    "next_request_ms": round((time.monotonic() - after) * 1000, 1),
}

print(json.dumps(report))
