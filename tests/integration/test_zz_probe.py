import httpx, pytest, json
pytestmark = pytest.mark.integration
def test_probe(bridge, backend):
    backend.script(match_path="/v1/models", status=500)
    for name in ("m1", "nope"):
        r = httpx.post(bridge.url + "/api/show", json={"model": name})
        print("show", name, r.status_code, r.text[:200])
    backend.reset()
    for m, p in (("HEAD", "/api/version"), ("HEAD", "/api/tags"), ("HEAD", "/api/blobs/sha256:abc"), ("POST", "/api/blobs/sha256:abc"), ("DELETE", "/api/delete"), ("GET", "/api/ps"), ("GET", "/api/nothing"), ("GET", "/api/chat")):
        r = httpx.request(m, bridge.url + p, json={"model": "m1"})
        print(m, p, r.status_code, r.headers.get("content-type"), r.text[:150])
    r = httpx.post(bridge.url + "/api/embed", json={"model": "e1", "input": ""}); print("embed empty", r.status_code, r.text)
    r = httpx.post(bridge.url + "/api/embeddings", json={"model": "e1", "prompt": ""}); print("embeddings empty", r.status_code, r.text)
    r = httpx.post(bridge.url + "/api/chat", json={"model": "m1", "messages": [{"role":"user","content":"x","images":[]}], "stream": False}); print("images[]", r.status_code, backend.requests_to("/v1/chat/completions")[-1].json["messages"])
    r = httpx.post(bridge.url + "/api/chat", json={"model": "m1", "messages": [{"role":"tool","content":"3","tool_name":"fn"}], "stream": False}); print("orphan tool", r.status_code, r.text)
    backend.script(reasoning=["r1","r2"])
    r = httpx.post(bridge.url + "/api/generate", json={"model": "m1", "prompt": "x", "think": True}); print("gen think stream", r.status_code, r.text[:600])
    backend.reset(); backend.script(fault="invalid_json")
    r = httpx.post(bridge.url + "/v1/chat/completions", json={"model": "m1", "messages": [{"role":"user","content":"x"}]}); print("v1 invalid json", r.status_code, r.text[:200])
    r = httpx.post(bridge.url + "/api/chat", json={"model": "m1", "messages": [{"role":"user","content":"x"}], "stream": False}); print("api invalid json", r.status_code, r.text[:200])
    backend.reset(); backend.script(fault="error_event", fault_after_tokens=0)
    r = httpx.post(bridge.url + "/api/chat", json={"model": "m1", "messages": [{"role":"user","content":"x"}]}); print("error first", r.status_code, r.text[:300])
    r = httpx.post(bridge.url + "/v1/chat/completions", json={"model": "m1", "stream": True, "messages": [{"role":"user","content":"x"}]}); print("v1 error first", r.status_code, r.text[:400])
    backend.reset(); backend.script(fault="no_usage")
    r = httpx.post(bridge.url + "/api/chat", json={"model": "m1", "messages": [{"role":"user","content":"x"}]}); print("no usage", r.status_code, r.text.splitlines()[-1])
    backend.reset(); backend.script(fault="garbage_sse")
    r = httpx.post(bridge.url + "/api/chat", json={"model": "m1", "messages": [{"role":"user","content":"x"}]}); print("garbage", r.status_code, [json.loads(l)["message"]["content"] for l in r.text.splitlines()])
