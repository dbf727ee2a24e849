"""Calls Loupe's recording gateway with the official `openai` Python client and Loupe API keys.

The server requires keys; project `alpha` has the key in LOUPE_ALPHA_KEY and project `beta` the
key in LOUPE_BETA_KEY. Route `openai` passes the caller's provider key through; route `keyed` has
a provider key of its own. Prints one JSON line: for each call, either the recorded ids (from the
`x-loupe-trace-id` / `x-loupe-span-id` headers) or the error status and message the client got.

Environment:
  LOUPE_GATEWAY_URL   the gateway, e.g. http://127.0.0.1:4318
  LOUPE_ALPHA_KEY, LOUPE_BETA_KEY
"""

import json
import os

import openai

GATEWAY = os.environ["LOUPE_GATEWAY_URL"].rstrip("/") + "/v1"
ALPHA = os.environ["LOUPE_ALPHA_KEY"]
BETA = os.environ["LOUPE_BETA_KEY"]
PROVIDER_KEY = "sk-py-caller-0001"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]

results = {}


def call(name, api_key, model="gpt-4o", headers=None):
    client = openai.OpenAI(
        base_url=GATEWAY, api_key=api_key, default_headers=headers or {}, max_retries=0
    )
    try:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
        raw.parse()
        results[name] = {
            "status": raw.http_response.status_code,
            "trace_id": raw.headers.get("x-loupe-trace-id"),
        }
    except openai.APIStatusError as error:
        body = error.response.json()
        results[name] = {"status": error.status_code, "message": body["error"]["message"]}


# The provider key in Authorization, the Loupe key in its own header.
call("loupe_header", PROVIDER_KEY, headers={"x-loupe-api-key": ALPHA})
# The route has its own provider key, so the Loupe key can be the client's api_key.
call("loupe_key_as_api_key", BETA, model="keyed/gpt-4o")
# x-loupe-project may repeat the key's project...
call("same_project", PROVIDER_KEY, headers={"x-loupe-api-key": ALPHA, "x-loupe-project": "alpha"})
# ...but never name another one.
call("other_project", PROVIDER_KEY, headers={"x-loupe-api-key": ALPHA, "x-loupe-project": "beta"})
# Keys are required: a provider key alone is not enough.
call("no_loupe_key", PROVIDER_KEY)
call("wrong_loupe_key", PROVIDER_KEY, headers={"x-loupe-api-key": "lp_not_a_key"})
# A pass-through route needs the provider key in Authorization.
call("loupe_key_on_passthrough_route", ALPHA)

print(json.dumps(results))
