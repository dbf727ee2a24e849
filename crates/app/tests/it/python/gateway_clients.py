"""Drives Loupe's recording gateway with the official `openai` and `anthropic` Python clients.

Checks what each client receives: parsed results, and for streams the raw bytes, which must be
identical to what the upstream sends when called directly with the same request. Prints one JSON
line: the ids of the recorded calls (from the `x-loupe-trace-id` / `x-loupe-span-id` headers).

Environment:
  LOUPE_GATEWAY_URL   the gateway, e.g. http://127.0.0.1:4318
  LOUPE_UPSTREAM_URL  the fake upstream's base URL, e.g. http://127.0.0.1:5000/v1
"""

import json
import os
import sys
import urllib.request

import anthropic
import openai

GATEWAY = os.environ["LOUPE_GATEWAY_URL"].rstrip("/")
UPSTREAM = os.environ["LOUPE_UPSTREAM_URL"].rstrip("/")
ANSWER = "The capital of France is Paris. It has been since 987."
MESSAGES = [
    {"role": "system", "content": "You are a terse geography tutor."},
    {"role": "user", "content": "What is the capital of France?"},
]

calls = []


def direct(path, body):
    """The raw bytes the upstream sends for `body` when called without the gateway."""
    request = urllib.request.Request(
        UPSTREAM + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        return response.read()


def remember(what, headers):
    trace_id = headers.get("x-loupe-trace-id")
    span_id = headers.get("x-loupe-span-id")
    assert trace_id and len(trace_id) == 32, (what, trace_id)
    assert span_id and len(span_id) == 16, (what, span_id)
    calls.append({"call": what, "trace_id": trace_id, "span_id": span_id})


def check(condition, message):
    if not condition:
        print(f"check failed: {message}", file=sys.stderr)
        sys.exit(1)


oa = openai.OpenAI(base_url=GATEWAY + "/v1", api_key="sk-py-caller-0001", max_retries=0)

# Non-streaming chat completion, with caller metadata.
raw = oa.chat.completions.with_raw_response.create(
    model="gpt-4o",
    messages=MESSAGES,
    temperature=0.2,
    user="py-user",
    extra_headers={"x-loupe-session": "py-session", "x-loupe-tags": "python,openai"},
)
completion = raw.parse()
check(completion.choices[0].message.content == ANSWER, completion)
check(completion.usage.prompt_tokens == 23, completion.usage)
check(completion.usage.prompt_tokens_details.cached_tokens == 12, completion.usage)
body = {"model": "gpt-4o", "messages": MESSAGES, "temperature": 0.2, "user": "py-user"}
check(raw.http_response.content == direct("/chat/completions", body), "chat body differs")
remember("chat", raw.headers)

# Streaming without usage: the client must not see the usage chunk the gateway asked for.
with oa.chat.completions.with_streaming_response.create(
    model="gpt-4o", messages=MESSAGES, stream=True
) as response:
    streamed = b"".join(response.iter_bytes())
    remember("chat_stream", response.headers)
expected = direct("/chat/completions", {"model": "gpt-4o", "messages": MESSAGES, "stream": True})
check(streamed == expected, f"stream bytes differ:\n{streamed!r}\n!=\n{expected!r}")
stream = oa.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
chunks = list(stream)
check("".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER, chunks)
check(all(getattr(c, "usage", None) is None for c in chunks), "a chunk carries usage")
remember("chat_stream_parsed", stream.response.headers)

# Streaming with usage asked for by the client: passed through unchanged.
with oa.chat.completions.with_streaming_response.create(
    model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
) as response:
    streamed = b"".join(response.iter_bytes())
    remember("chat_stream_usage", response.headers)
expected = direct(
    "/chat/completions",
    {"model": "gpt-4o", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}},
)
check(streamed == expected, "stream-with-usage bytes differ")
check(b'"usage":{"prompt_tokens":23' in streamed, "usage chunk missing")

# Tool calls.
tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
raw = oa.chat.completions.with_raw_response.create(
    model="fake-tools", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=tools
)
call = raw.parse().choices[0].message.tool_calls[0]
check(call.function.name == "get_weather", call)
check(json.loads(call.function.arguments) == {"location": "Paris, France"}, call)
remember("tools", raw.headers)

# An upstream error reaches the client as the provider's own error.
try:
    oa.chat.completions.create(model="fake-error-429", messages=MESSAGES)
    check(False, "no error raised")
except openai.RateLimitError as error:
    check(error.status_code == 429, error)
    check(error.body["message"] == "Rate limit reached for requests", error.body)
    remember("error_429", error.response.headers)

# Embeddings, responses, models.
raw = oa.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["a", "b"])
check(len(raw.parse().data) == 2, "embeddings")
remember("embeddings", raw.headers)
raw = oa.responses.with_raw_response.create(model="gpt-4o", input="Capital of France?")
check(raw.parse().output_text == ANSWER, "responses")
remember("responses", raw.headers)
check([m.id for m in oa.models.list()][:2] == ["gpt-4o", "gpt-4o-mini"], "models")

# Anthropic, non-streaming and streaming.
an = anthropic.Anthropic(base_url=GATEWAY, api_key="sk-ant-py-caller-0001", max_retries=0)
raw = an.messages.with_raw_response.create(
    model="claude-sonnet-4-5",
    max_tokens=100,
    system="You are a terse geography tutor.",
    messages=[{"role": "user", "content": "What is the capital of France?"}],
)
message = raw.parse()
check(message.content[0].text == ANSWER, message)
check(message.usage.cache_read_input_tokens == 10, message.usage)
remember("anthropic", raw.headers)
with an.messages.stream(
    model="claude-sonnet-4-5",
    max_tokens=100,
    messages=[{"role": "user", "content": "What is the capital of France?"}],
) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
    remember("anthropic_stream", stream.response.headers)
check(text == ANSWER, text)
check(final.usage.output_tokens == 15, final.usage)
with an.messages.with_streaming_response.create(
    model="claude-sonnet-4-5",
    max_tokens=100,
    messages=[{"role": "user", "content": "Hi"}],
    stream=True,
) as response:
    streamed = b"".join(response.iter_bytes())
    remember("anthropic_stream_raw", response.headers)
expected = direct(
    "/messages",
    {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "Hi"}], "stream": True},
)
check(streamed == expected, "anthropic stream bytes differ")

print(json.dumps({"calls": calls}))
